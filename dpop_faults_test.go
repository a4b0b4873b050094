package oauthtransport_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

// faultySigner is a DPoP key whose signature number faultAt panics, or
// hangs until release is closed; the others are good. The token
// request's proof is the first signature.
type faultySigner struct {
	key     *ecdsa.PrivateKey
	faultAt int64
	release chan struct{} // nil: the fault is a panic
	signed  atomic.Int64
}

func (s *faultySigner) Public() crypto.PublicKey { return s.key.Public() }

func (s *faultySigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if s.signed.Add(1) == s.faultAt {
		if s.release == nil {
			panic("the HSM exploded")
		}
		<-s.release
	}
	return s.key.Sign(r, digest, opts)
}

func newFaultySigner(t *testing.T, faultAt int64, hangs bool) *faultySigner {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	s := &faultySigner{key: key, faultAt: faultAt}
	if hangs {
		s.release = make(chan struct{})
		t.Cleanup(func() { close(s.release) }) // the abandoned signature finishes: no goroutine stays behind
	}
	return s
}

// A DPoP key that panics while signing an API request's proof fails that
// request with a *TokenError wrapping a *PanicError, as a panic during a
// token request does; the caller's goroutine survives, and so does the
// Transport and its token.
func TestDPoPSignerPanicOnAnAPIRequest(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.DPoP(false))
	tr := ccTransport(t, srv, oauthtransport.WithDPoP(newFaultySigner(t, 2, false)))

	_, err := get(t, tr.Client(), srv.APIURL)
	require.ErrorIs(t, err, oauthtransport.ErrToken)
	pe, ok := errors.AsType[*oauthtransport.PanicError](err)
	require.True(t, ok, "no *PanicError in %v", err)
	assert.Contains(t, pe.Value, "the HSM exploded")
	assert.Zero(t, srv.APICalls(), "nothing sent without a proof")

	mustGet(t, tr.Client(), srv.APIURL)
	assert.Equal(t, int64(1), srv.TokenCalls(), "the token was kept")
}

// A DPoP key that hangs while signing an API request's proof is left
// behind when the request's context is done: the caller gets its
// deadline back.
func TestDPoPSignerHangOnAnAPIRequest(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.DPoP(false))
	tr := ccTransport(t, srv, oauthtransport.WithDPoP(newFaultySigner(t, 2, true)))
	_, err := tr.Token(context.Background()) // the token request's proof: the first signature
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.APIURL, nil)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		resp, err := tr.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the request was still waiting for the signer 5s after its 200ms deadline")
	}
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Zero(t, srv.APICalls(), "nothing sent without a proof")
}
