package main

import (
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	var out strings.Builder
	if err := run(&out); err != nil {
		t.Fatal(err)
	}
	want := `500 users: 500 requests answered 200; token endpoint calls: 500
rows in oauthtransport_tokens: 500
user-7: ErrReauthRequired: ask the user to connect their account again
user-8: 200 OK
user-7 after authorizing again: 200 OK
`
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}
