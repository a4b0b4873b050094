package oauthtransport

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

type okBase struct{}

func (okBase) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: req}, nil
}

// TestKeyedDefaultStoreIsBounded: without WithStore, a keyed Transport's
// own store drops an evicted key's token when another can be fetched, and
// keeps the ones that hold a refresh token (issue 20, item 10).
func TestKeyedDefaultStoreIsBounded(t *testing.T) {
	t.Parallel()
	for _, withRT := range []bool{false, true} {
		src := SourceFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
			tok := &oauth2.Token{AccessToken: "at", Expiry: time.Now().Add(time.Hour)}
			if withRT {
				tok.RefreshToken = "rt"
			}
			return tok, nil
		})
		tr, err := NewKeyed(func(string) (Source, error) { return src, nil }, WithMaxTokens(50), WithBase(okBase{}))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2000 {
			if _, err := tr.Token(WithKey(context.Background(), fmt.Sprint("user-", i))); err != nil {
				t.Fatal(err)
			}
		}
		n := 0
		for _, err := range tr.env.store.(store.Lister).Keys(context.Background(), "") {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		switch {
		case !withRT && n > 60:
			t.Errorf("tokens without a refresh token: %d kept for 50 keys in memory", n)
		case withRT && n != 2000:
			t.Errorf("tokens with a refresh token: %d kept of 2000: a refresh token was lost", n)
		}
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWithMaxTokensOnlyOnAKeyedTransport(t *testing.T) {
	t.Parallel()
	src := SourceFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) { return nil, nil })
	if _, err := New(src, WithMaxTokens(5)); err == nil || !strings.Contains(err.Error(), "WithMaxTokens") {
		t.Errorf("New with WithMaxTokens: %v, want an error naming it", err)
	}
}
