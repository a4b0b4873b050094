package wire

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestErrorMessage(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		`{"title":"Out of credit","detail":"Your balance is 30"}`:                             "Out of credit: Your balance is 30",
		`{"error":"invalid_request","error_description":"missing\nparam"}`:                    "invalid_request: missing param",
		`{"error":{"code":403,"message":"The caller does not have permission","status":"X"}}`: "The caller does not have permission",
		`{"errors":[{"code":"E42","message":"quota"}]}`:                                       "E42: quota",
		`{"errors":[{"code":42,"message":"quota"}]}`:                                          "42: quota",
		`{"message":"Not Found"}`:                                                             "Not Found",
		`<html>oops</html>`:                                                                   "",
		`{"error":` + strings.Repeat(`[`, 10000):                                              "",
		`{"message":"` + strings.Repeat("x", 500) + `"}`:                                      strings.Repeat("x", 200) + "…",
	}
	for in, want := range tests {
		assert.Equal(t, want, ErrorMessage(ParseProblem([]byte(in)), []byte(in)), in[:min(len(in), 40)])
	}
}

// FuzzErrorBody: the error-body parsers never panic, and a message is one
// short line. Seeds are in testdata/fuzz.
func FuzzErrorBody(f *testing.F) {
	f.Add([]byte(`{"type":"about:blank","title":"Bad","status":400,"detail":"x"}`))
	f.Add([]byte(`{"error":{"code":403,"message":"no","errors":[{"reason":"rateLimitExceeded"}]}}`))
	f.Add([]byte(`{"errors":[{"code":1,"message":"m"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		msg := ErrorMessage(ParseProblem(body), body)
		if len(msg) > 210 || strings.ContainsAny(msg, "\r\n") {
			t.Fatalf("message not one short line: %q", msg)
		}
		_ = Limit403(http.Header{}, body)
		_ = ResourceLimit420(body)
		_ = IsProblemJSON(string(body))
	})
}
