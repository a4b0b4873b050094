package oauthtransport

import (
	"errors"
	"net/http"
	"testing"
)

func TestTokenGuardAllowsPlainHTTPWhenAsked(t *testing.T) {
	t.Parallel()
	var sent int
	base := roundTripper(func(*http.Request) (*http.Response, error) {
		sent++
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	})
	req, _ := http.NewRequest(http.MethodPost, "http://192.0.2.1/token", nil)
	if _, err := (&tokenGuard{base: base}).RoundTrip(req); !errors.Is(err, ErrInsecureTransport) || sent != 0 {
		t.Fatalf("refused: err %v, sent %d", err, sent)
	}
	if _, err := (&tokenGuard{base: base, insecureOK: true}).RoundTrip(req); err != nil || sent != 1 {
		t.Fatalf("WithInsecureHTTP: err %v, sent %d", err, sent)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
