package oauthtransport_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
)

// A step-up challenge (RFC 9470) is information for the caller: no token
// is dropped or refreshed for it, and the error carries what to ask for.
func TestStepUpChallengeIsFinalAndInformative(t *testing.T) {
	t.Parallel()
	var fetches atomic.Int64
	src := oauthtransport.SourceFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		fetches.Add(1)
		return &oauth2.Token{AccessToken: "tok", TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}, nil
	})
	var hits atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_user_authentication", `+
			`error_description="A different authentication level is required", acr_values="phr phrh", max_age="0", `+
			`resource_metadata="https://api.example.com/.well-known/oauth-protected-resource"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer api.Close()
	tr := newTransport(t, src)
	_, err := get(t, tr.Client(), api.URL+"/transfer")
	require.ErrorIs(t, err, oauthtransport.ErrStepUpRequired)
	require.ErrorIs(t, err, oauthtransport.ErrUnauthorized)
	ue, ok := errors.AsType[*oauthtransport.UnauthorizedError](err)
	require.True(t, ok)
	require.NotNil(t, ue.StepUp)
	assert.Equal(t, []string{"phr", "phrh"}, ue.StepUp.ACRValues)
	assert.True(t, ue.StepUp.HasMaxAge)
	assert.Zero(t, ue.StepUp.MaxAge)
	assert.Equal(t, "https://api.example.com/.well-known/oauth-protected-resource", ue.ResourceMetadata)
	assert.Equal(t, int64(1), hits.Load(), "not replayed")
	assert.Equal(t, int64(1), fetches.Load(), "no useless refresh")
	assert.Equal(t, int64(0), tr.Stats().Invalidations, "the token was kept")
}

// An ordinary 401 with resource_metadata still renews the token once.
func TestResourceMetadataOnAnOrdinary401(t *testing.T) {
	t.Parallel()
	var fetches atomic.Int64
	src := oauthtransport.SourceFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		fetches.Add(1)
		return &oauth2.Token{AccessToken: "tok", TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}, nil
	})
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="https://api.example.com/.well-known/oauth-protected-resource"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer api.Close()
	tr := newTransport(t, src)
	_, err := get(t, tr.Client(), api.URL)
	ue, ok := errors.AsType[*oauthtransport.UnauthorizedError](err)
	require.True(t, ok)
	assert.NotErrorIs(t, err, oauthtransport.ErrStepUpRequired)
	assert.Nil(t, ue.StepUp)
	assert.Equal(t, "https://api.example.com/.well-known/oauth-protected-resource", ue.ResourceMetadata)
	assert.Equal(t, int64(2), fetches.Load(), "one renewal, as for any 401")
}
