package oauthtransport_test

import (
	"bufio"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthtransport/oauthtransport"
)

// Secrets with characters that URL encoding changes, as x/oauth2 sends
// them: in the Basic header (client ID and secret URL-encoded, then
// base64) and in a form body.
const (
	echoClientID     = "client/1+x"
	echoClientSecret = "s3cr+t/=&x"
	echoRefreshToken = "rt/with+special=chars&more-0123456789"
)

// echoingTokenEndpoint refuses every token request, echoing what it was
// sent in every member of its answer: the client secret and the refresh
// token in error (with a line break), the Basic header's base64 value and
// the URL-encoded secret and refresh token in error_description and
// error_uri; the body is JSON as Go writes it (& as \u0026).
func echoingTokenEndpoint(w http.ResponseWriter, r *http.Request) {
	basic := strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
	_, escaped, _ := r.BasicAuth() // as sent: URL-encoded
	secret, _ := url.QueryUnescape(escaped)
	rt := r.PostFormValue("refresh_token")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{
		"error":             secret + "\n" + cmp.Or(rt, "invalid_client") + strings.Repeat(" and on", 100),
		"error_description": "refused Basic " + basic + " (" + escaped + ")\nfor " + url.QueryEscape(rt),
		"error_uri":         "https://idp.example/errors?secret=" + escaped + "&rt=" + url.QueryEscape(rt),
	})
}

// echoedForms is every form the secrets took on the wire, and the JSON
// escaping of each.
func echoedForms() []string {
	var forms []string
	for _, s := range []string{echoClientSecret, echoRefreshToken} {
		forms = append(forms, s, url.QueryEscape(s))
	}
	forms = append(forms, base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(echoClientID)+":"+url.QueryEscape(echoClientSecret))))
	for _, f := range forms {
		j, _ := json.Marshal(f)
		forms = append(forms, strings.Trim(string(j), `"`))
	}
	return forms
}

// loggedText is every value a JSON log holds, unescaped.
func loggedText(t *testing.T, logs string) string {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line))
		fmt.Fprintln(&b, line)
	}
	return b.String()
}

// A token endpoint that echoes the client secret and the refresh token,
// in any form they were sent in, has them redacted from every member of
// its answer: the TokenError's text (one line, its code bounded), the
// *oauth2.RetrieveError it wraps, and the log.
func TestTokenErrorRedactsWhatTheServerEchoes(t *testing.T) {
	t.Parallel()
	for name, src := range map[string]func(tokenURL string) oauthtransport.Source{
		"client credentials": func(tokenURL string) oauthtransport.Source {
			return oauthtransport.ClientCredentials(&clientcredentials.Config{ClientID: echoClientID, ClientSecret: echoClientSecret,
				TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInHeader})
		},
		"refresh token": func(tokenURL string) oauthtransport.Source {
			cfg := &oauth2.Config{ClientID: echoClientID, ClientSecret: echoClientSecret,
				Endpoint: oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInHeader}}
			return oauthtransport.RefreshToken(cfg, &oauth2.Token{RefreshToken: echoRefreshToken})
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(echoingTokenEndpoint))
			t.Cleanup(srv.Close)
			var logs logBuffer
			tr := newTransport(t, src(srv.URL+"/token"), oauthtransport.WithLogger(logs.logger()))
			_, err := get(t, tr.Client(), srv.URL+"/api")
			// Failure messages never print the error: it may hold the secrets.
			te, ok := errors.AsType[*oauthtransport.TokenError](err)
			require.True(t, ok, "no *TokenError in the error")
			assert.Equal(t, http.StatusBadRequest, te.StatusCode)
			assert.False(t, strings.ContainsAny(te.Error(), "\r\n"), "the error is more than one line")
			assert.LessOrEqual(t, len(te.Code), 100+len("…"), "the code is not bounded")
			assert.True(t, strings.HasPrefix(te.Code, "[REDACTED] "), "the code does not begin with the redacted secret")
			assertNoSecret(t, "the error", err.Error(), echoedForms()...)
			re, ok := errors.AsType[*oauth2.RetrieveError](err)
			require.True(t, ok, "no *oauth2.RetrieveError in the error")
			for what, text := range map[string]string{"ErrorCode": re.ErrorCode, "ErrorDescription": re.ErrorDescription,
				"ErrorURI": re.ErrorURI, "Body": string(re.Body), "Error()": re.Error()} {
				assertNoSecret(t, "the RetrieveError's "+what, text, echoedForms()...)
			}
			logs.waitFor(t, "token refresh failed")
			assertNoSecret(t, "the log", loggedText(t, logs.String()), echoedForms()...)
		})
	}
}

// A TokenError from a Source's own code, its code or description holding
// line breaks, still reads as one line.
func TestTokenErrorIsOneLine(t *testing.T) {
	t.Parallel()
	src := oauthtransport.SourceFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		return nil, &oauthtransport.TokenError{Code: "invalid_grant\nsecond line", Description: "the grant\r\nis gone", StatusCode: 400}
	})
	tr := newTransport(t, src)
	_, err := tr.Token(context.Background())
	require.ErrorIs(t, err, oauthtransport.ErrToken)
	assert.NotContains(t, err.Error(), "\n")
	assert.NotContains(t, err.Error(), "\r")
}
