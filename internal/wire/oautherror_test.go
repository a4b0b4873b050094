package wire

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

// FuzzOAuthErrorCode reads a token endpoint's error body (untrusted): it
// never panics, and the body it hands back reads exactly as the original.
func FuzzOAuthErrorCode(f *testing.F) {
	f.Add([]byte(`{"error":"use_dpop_nonce","error_description":"Authorization server requires nonce in DPoP proof"}`))
	f.Add([]byte(`{"error":["x"]}`))
	f.Add([]byte("not json"))
	f.Fuzz(func(t *testing.T, body []byte) {
		resp := &http.Response{Body: io.NopCloser(bytes.NewReader(body))}
		_, restored := OAuthErrorCode(resp)
		again, err := io.ReadAll(restored)
		if err != nil || !bytes.Equal(again, body) {
			t.Fatalf("restored body differs: %q, want %q (%v)", again, body, err)
		}
	})
}
