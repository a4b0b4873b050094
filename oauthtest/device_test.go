package oauthtest_test

// The device grant, driven with x/oauth2's DeviceAuth and
// DeviceAccessToken: each poll waits for the interval (1 s by default).

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/oauthtest"
)

func TestDeviceFlowPendingThenApproved(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.DeviceDecisionAfter(1))
	var asked atomic.Int64
	srv.Person(func(r *http.Request) oauthtest.Decision {
		asked.Add(1)
		assert.Equal(t, "read", r.PostFormValue("scope"), "the person sees the device authorization request")
		return oauthtest.Approved
	})
	cfg := srv.PublicConfig()
	cfg.Scopes = []string{"read"}
	da, err := cfg.DeviceAuth(context.Background())
	require.NoError(t, err)
	assert.True(t, regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`).MatchString(da.UserCode),
		"a user code of RFC 8628 §6.1's consonants, XXXX-XXXX")
	assert.Equal(t, srv.URL+"/device", da.VerificationURI)
	assert.True(t, da.VerificationURIComplete == da.VerificationURI+"?user_code="+da.UserCode, "verification_uri_complete")
	assert.EqualValues(t, 1, da.Interval)
	assert.WithinDuration(t, time.Now().Add(10*time.Minute), da.Expiry, time.Minute)

	tok, err := cfg.DeviceAccessToken(context.Background(), da)
	require.NoError(t, err)
	assert.True(t, srv.Live(tok.AccessToken))
	assert.Equal(t, "read", tok.Extra("scope"))
	assert.EqualValues(t, 1, asked.Load())
	assert.EqualValues(t, 2, srv.DevicePolls()-srv.SlowDowns(), "one pending, then the tokens")

	// The refresh token rotates like any other.
	next, err := cfg.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	require.NoError(t, err)
	assert.True(t, next.RefreshToken != tok.RefreshToken, "the refresh token rotated")

	// A device code gives its tokens once.
	_, err = cfg.Exchange(context.Background(), "", oauth2.SetAuthURLParam("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
		oauth2.SetAuthURLParam("device_code", da.DeviceCode))
	assert.Equal(t, "invalid_grant", oauthErrorCode(t, err))
	require.Len(t, srv.DeviceAuthorizations(), 1)
	assert.Equal(t, oauthtest.PublicClientID, srv.DeviceAuthorizations()[0].Get("client_id"))
}

func TestDeviceApprovedByHand(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	cfg := srv.PublicConfig()
	da, err := cfg.DeviceAuth(context.Background())
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := cfg.DeviceAccessToken(context.Background(), da)
		done <- err
	}()
	require.Eventually(t, func() bool { return srv.DevicePolls() > 0 }, 30*time.Second, 10*time.Millisecond, "a first poll")
	// Typed in lowercase, without the dash.
	assert.True(t, srv.ApproveDevice(strings.ToLower(strings.ReplaceAll(da.UserCode, "-", ""))))
	assert.False(t, srv.ApproveDevice(da.UserCode), "decided already")
	assert.False(t, srv.ApproveDevice("BCDF-GHJK"), "no such user code")
	require.NoError(t, <-done)
}

func TestDeviceVisit(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	cfg := srv.PublicConfig()
	da, err := cfg.DeviceAuth(context.Background())
	require.NoError(t, err)
	resp := get(t, da.VerificationURIComplete) // the person approves (the default)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	_, err = cfg.DeviceAccessToken(context.Background(), da)
	require.NoError(t, err)
	assert.Equal(t, http.StatusNotFound, get(t, da.VerificationURIComplete).StatusCode, "decided already")

	srv.Person(oauthtest.Deny)
	da, err = cfg.DeviceAuth(context.Background())
	require.NoError(t, err)
	assert.Equal(t, http.StatusForbidden, get(t, da.VerificationURIComplete).StatusCode)
	_, err = cfg.DeviceAccessToken(context.Background(), da)
	assert.Equal(t, "access_denied", oauthErrorCode(t, err))
}

func TestDeviceDenied(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	cfg := srv.PublicConfig()
	da, err := cfg.DeviceAuth(context.Background())
	require.NoError(t, err)
	require.True(t, srv.DenyDevice(da.UserCode))
	_, err = cfg.DeviceAccessToken(context.Background(), da)
	assert.Equal(t, "access_denied", oauthErrorCode(t, err))
	assert.False(t, strings.Contains(err.Error(), da.DeviceCode), "the error never holds the device code")
	assert.EqualValues(t, 1, srv.DevicePolls())
}

func TestDeviceCodeExpires(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.DeviceCodeLifetime(time.Second))
	cfg := srv.PublicConfig()
	da, err := cfg.DeviceAuth(context.Background())
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(time.Second), da.Expiry, time.Second)
	// x/oauth2 gives up at da.Expiry by itself; let it poll until the
	// server says the code expired.
	da.Expiry = time.Time{}
	_, err = cfg.DeviceAccessToken(context.Background(), da)
	assert.Equal(t, "expired_token", oauthErrorCode(t, err))
	assert.False(t, srv.ApproveDevice(da.UserCode), "an expired code cannot be approved")
}

// TestDeviceSlowDown: a poll right after the device authorization is too
// fast; the interval of that device code grows by 5 s, so x/oauth2's poll
// 1 s later is too fast as well, and x/oauth2 then waits 6 s (~7 s).
func TestDeviceSlowDown(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	cfg := srv.PublicConfig()
	da, err := cfg.DeviceAuth(context.Background())
	require.NoError(t, err)
	require.True(t, srv.ApproveDevice(da.UserCode))

	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {da.DeviceCode}, "client_id": {oauthtest.PublicClientID}}
	resp, err := http.PostForm(srv.TokenURL, form)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.EqualValues(t, 1, srv.SlowDowns(), "polled at once")

	tok, err := cfg.DeviceAccessToken(context.Background(), da)
	require.NoError(t, err, "x/oauth2 slowed down")
	assert.True(t, srv.Live(tok.AccessToken))
	assert.EqualValues(t, 2, srv.SlowDowns(), "the interval grew for this device code")
	assert.EqualValues(t, 3, srv.DevicePolls())
}

func TestDeviceConfidentialClient(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.DeviceDecisionAfter(0))
	cfg := srv.OAuth2Config()
	_, err := cfg.DeviceAuth(context.Background())
	assert.Equal(t, "invalid_client", oauthErrorCode(t, err), "x/oauth2 does not authenticate by itself")

	da, err := cfg.DeviceAuth(context.Background(), oauth2.SetAuthURLParam("client_secret", oauthtest.ClientSecret))
	require.NoError(t, err)

	// Another client cannot redeem it.
	public := srv.PublicConfig()
	_, err = public.Exchange(context.Background(), "", oauth2.SetAuthURLParam("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
		oauth2.SetAuthURLParam("device_code", da.DeviceCode))
	assert.Equal(t, "invalid_grant", oauthErrorCode(t, err))

	tok, err := cfg.DeviceAccessToken(context.Background(), da)
	require.NoError(t, err)
	assert.True(t, srv.Live(tok.AccessToken))
}
