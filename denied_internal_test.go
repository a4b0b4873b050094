package oauthtransport

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"golang.org/x/oauth2"
)

func TestAuthorizationDeniedMatches(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		err    *TokenError
		denied bool
	}{
		{"access_denied", &TokenError{Code: "access_denied", StatusCode: http.StatusBadRequest}, true},
		{"expired_token", &TokenError{Code: "expired_token", StatusCode: http.StatusBadRequest}, true},
		{"login timed out", &TokenError{Err: context.DeadlineExceeded, denied: true}, true},
		{"device code refused by x/oauth2", asTokenError(&oauth2.RetrieveError{ErrorCode: "access_denied",
			Response: &http.Response{StatusCode: http.StatusBadRequest}}), true},
		{"invalid_grant", &TokenError{Code: "invalid_grant", StatusCode: http.StatusBadRequest}, false},
		{"dead grant", reauthError(errors.New("refused")), false},
		{"authorization_pending", &TokenError{Code: "authorization_pending", StatusCode: http.StatusBadRequest}, false},
		{"slow_down", &TokenError{Code: "slow_down", StatusCode: http.StatusBadRequest}, false},
		{"network", &TokenError{Err: context.DeadlineExceeded}, false},
		{"temporary", temporaryError(context.DeadlineExceeded), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wrapped := &url.Error{Op: "Get", URL: "https://api.example/", Err: fmt.Errorf("round trip: %w", tc.err)}
			for _, err := range []error{tc.err, wrapped} {
				assert.Equal(t, tc.denied, errors.Is(err, ErrAuthorizationDenied), "errors.Is(%v, ErrAuthorizationDenied)", err)
				assert.ErrorIs(t, err, ErrToken)
			}
			if tc.denied {
				assert.False(t, tc.err.Temporary(), "waiting does not undo a refusal")
				assert.NotErrorIs(t, tc.err, ErrReauthRequired)
			}
		})
	}
}

func TestLoginTimeoutText(t *testing.T) {
	t.Parallel()
	err := &TokenError{Err: context.DeadlineExceeded, denied: true}
	assert.Equal(t, "oauthtransport: cannot obtain a token: context deadline exceeded: the login timed out", err.Error())
}
