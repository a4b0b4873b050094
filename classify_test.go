package oauthtransport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"

	"golang.org/x/oauth2"
)

func TestFateOf(t *testing.T) {
	t.Parallel()
	dial := &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}
	tests := []struct {
		err  error
		want fate
	}{
		{context.Canceled, fateCancelled},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), fateCancelled},
		{&url.Error{Op: "Post", URL: "https://idp", Err: dial}, fateNotSent},
		{&net.DNSError{Err: "no such host"}, fateNotSent},
		{&insecureError{}, fateNotSent},
		{&url.Error{Op: "Post", URL: "https://idp", Err: io.ErrUnexpectedEOF}, fateLost},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, fateLost},
		{&url.Error{Op: "Post", URL: "https://idp", Err: errors.New("tls: bad certificate")}, fateUnclear},
		{errors.New("the source's own failure"), fateOther},
	}
	for _, tt := range tests {
		if got := fateOf(tt.err); got != tt.want {
			t.Errorf("fateOf(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func answered(status int, code string) error {
	return &oauth2.RetrieveError{Response: &http.Response{StatusCode: status, Header: http.Header{}}, ErrorCode: code}
}

// TestWhatATokenEndpointAnswerMeans is the table of what each answer does
// to a refresh: retried within it, a dead grant, a refused client, a long
// cool-down, a refresh token that may be spent.
func TestWhatATokenEndpointAnswerMeans(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                                 string
		err                                  error
		retry, dead, client, terminal, spent bool
	}{
		{"invalid_grant", answered(400, "invalid_grant"), false, true, false, true, false},
		{"Dex's reuse answer", answered(400, "invalid_request"), false, true, false, true, false},
		{"DPoP nonce", answered(400, "use_dpop_nonce"), false, false, false, false, false},
		{"bad DPoP proof", answered(400, "invalid_dpop_proof"), false, false, false, false, false},
		{"a proxy's 400 page", answered(400, ""), false, false, false, false, false},
		{"invalid_client", answered(401, "invalid_client"), false, false, true, true, false},
		{"unauthorized_client", answered(400, "unauthorized_client"), false, false, true, true, false},
		{"invalid_scope", answered(400, "invalid_scope"), false, false, false, true, false},
		{"503", answered(503, ""), true, false, false, false, false},
		{"429", answered(429, ""), true, false, false, false, false},
		{"no connection", &url.Error{Op: "Post", URL: "https://idp", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, true, false, false, false, false},
		{"connection dropped", &url.Error{Op: "Post", URL: "https://idp", Err: io.EOF}, false, false, false, false, true},
		{"answer lost", &lostError{errors.New("reset")}, false, false, false, false, true},
	}
	for _, tt := range tests {
		te := asTokenError(tt.err)
		got := [...]bool{retryableFetch(tt.err), grantRefused(te), clientRefused(tt.err), te.terminal(), possiblySpent(tt.err)}
		want := [...]bool{tt.retry, tt.dead, tt.client, tt.terminal, tt.spent}
		if got != want {
			t.Errorf("%s: retry, dead, client, terminal, spent = %v, want %v", tt.name, got, want)
		}
	}
}

func TestClassifyAPIFailures(t *testing.T) {
	t.Parallel()
	if v := classify(nil, &url.Error{Op: "Get", URL: "https://api", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}); v.class != retrySafe {
		t.Errorf("no connection: class %d, want retrySafe", v.class)
	}
	if v := classify(nil, &url.Error{Op: "Get", URL: "https://api", Err: io.EOF}); v.class != retryUnsafe {
		t.Errorf("connection dropped: class %d, want retryUnsafe", v.class)
	}
	if v := classify(nil, context.Canceled); v.class != noRetry {
		t.Errorf("cancelled: class %d, want noRetry", v.class)
	}
}
