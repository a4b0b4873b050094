package wire

// The OAuth error body (RFC 6749 §5.2) of a token endpoint's answer, read
// without consuming it. Fuzzed in oautherror_test.go.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
)

// OAuthErrorCode reads the "error" member of an OAuth error response
// (RFC 6749 §5.2), and returns a body that reads as the original did.
func OAuthErrorCode(resp *http.Response) (string, io.ReadCloser) {
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	restored := struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(data), resp.Body), resp.Body}
	if err != nil {
		return "", restored
	}
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(data, &e)
	return e.Error, restored
}
