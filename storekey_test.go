package oauthtransport

import (
	"context"
	"testing"

	"golang.org/x/oauth2"
)

type resourceSource struct{ Source }

func (resourceSource) storeScope() string {
	return resourceScope([]string{"https://b.example/", "https://a.example/"})
}

func TestStoreKeys(t *testing.T) {
	t.Parallel()
	plain := SourceFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) { return nil, nil })
	scoped := resourceSource{plain}
	hash := resourceScope([]string{"https://a.example/", "https://b.example/", "https://a.example/"})
	tests := []struct {
		name  string
		keys  storeKeys
		key   string
		src   Source
		want  string
		keyed bool
	}{
		{"one token", newStoreKeys("svc", "", false), "svc", plain, "svc", false},
		{"dpop", newStoreKeys("svc", "jkt", false), "svc", plain, "svc#dpop:jkt", false},
		{"resources", newStoreKeys("svc", "", false), "svc", scoped, "svc" + hash, false},
		{"keyed", newStoreKeys("svc", "", true), "user/1", plain, "svc/user/1", true},
		{"keyed dpop resources", newStoreKeys("svc", "jkt", true), "u#x", scoped, "svc#dpop:jkt/u#x" + hash, true},
	}
	for _, tt := range tests {
		got := tt.keys.of(tt.key, tt.src)
		if got != tt.want {
			t.Errorf("%s: of = %q, want %q", tt.name, got, tt.want)
		}
		if !tt.keyed {
			continue
		}
		name, ok := tt.keys.name(got)
		if !ok || name != tt.key {
			t.Errorf("%s: name(%q) = %q, %v; want %q", tt.name, got, name, ok, tt.key)
		}
	}
	if _, ok := newStoreKeys("svc", "", true).name("other/user"); ok {
		t.Error("a key under another WithStore key was read as ours")
	}
	if resourceScope(nil) != "" || len(hash) != len("#resource:")+12 {
		t.Errorf("resource scope %q", hash)
	}
}
