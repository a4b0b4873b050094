package oauthtransport_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

// platform issues workload identities, as Kubernetes or a CI system
// does: JWTs signed by a key the authorization server trusts.
type platform struct {
	key    *ecdsa.PrivateKey
	signer jose.Signer
}

func newPlatform(t testing.TB) *platform {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
	require.NoError(t, err)
	return &platform{key: key, signer: signer}
}

// jwt is a JWT for sub, to aud, issued at iat and expiring at exp (no
// exp when zero), with a random ID.
func (p *platform) jwt(t testing.TB, iss, sub, aud string, iat, exp time.Time) string {
	t.Helper()
	var id [16]byte
	_, _ = rand.Read(id[:])
	c := josejwt.Claims{Issuer: iss, Subject: sub, Audience: josejwt.Audience{aud}, ID: hex.EncodeToString(id[:]),
		IssuedAt: josejwt.NewNumericDate(iat)}
	if !exp.IsZero() {
		c.Expiry = josejwt.NewNumericDate(exp)
	}
	s, err := josejwt.Signed(p.signer).Claims(c).Serialize()
	require.NoError(t, err)
	return s
}

// clientJWT is a client assertion for srv's client, living ttl from now.
func (p *platform) clientJWT(t testing.TB, srv *oauthtest.Server, ttl time.Duration) string {
	now := time.Now()
	return p.jwt(t, oauthtest.ClientID, oauthtest.ClientID, srv.TokenURL, now, now.Add(ttl))
}

// assertionClient is a client-credentials Source for srv's client,
// authenticated with f's assertions.
func assertionClient(srv *oauthtest.Server, f oauthtransport.AssertionFunc) oauthtransport.Source {
	cfg := srv.ClientCredentials()
	cfg.ClientSecret = ""
	return oauthtransport.ClientCredentials(cfg, oauthtransport.WithClientAssertion(f))
}

// sentAssertions are the client assertions (or grant assertions) of the
// token requests srv accepted, oldest first.
func sentAssertions(srv *oauthtest.Server) []string {
	var out []string
	for _, r := range srv.TokenRequests() {
		a := r.Form.Get("client_assertion")
		if a == "" {
			a = r.Form.Get("assertion")
		}
		out = append(out, a)
	}
	return out
}

// assertSecrets checks that got holds want, in order, without printing
// either: a failure shows fingerprints.
func assertSecrets(t testing.TB, want, got []string, msg string) {
	t.Helper()
	if !slices.Equal(want, got) {
		t.Errorf("%s: got %v, want %v (SHA-256 fingerprints)", msg, fingerprints(got), fingerprints(want))
	}
}

func fingerprints(secrets []string) []string {
	out := make([]string, len(secrets))
	for i, s := range secrets {
		sum := sha256.Sum256([]byte(s))
		out[i] = hex.EncodeToString(sum[:4])
	}
	return out
}

// writeAtomically replaces the file at path with content by a rename, as
// the kubelet updates a projected token.
func writeAtomically(t testing.TB, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// traffic sends GETs to url from 4 goroutines until stopped, counting
// the requests that did not get a 200.
type traffic struct {
	stop     context.CancelFunc
	wg       sync.WaitGroup
	sent     atomic.Int64
	failures atomic.Int64
	mu       sync.Mutex
	waiters  []trafficWaiter
}

type trafficWaiter struct {
	n    int64
	done chan struct{}
}

func startTraffic(t testing.TB, client *http.Client, url string) *traffic {
	ctx, stop := context.WithCancel(context.Background())
	tr := &traffic{stop: stop}
	for range 4 {
		tr.wg.Go(func() {
			for ctx.Err() == nil {
				resp, err := client.Get(url)
				if err != nil || resp.StatusCode != http.StatusOK {
					tr.failures.Add(1)
				}
				if err == nil {
					resp.Body.Close()
				}
				tr.sent.Add(1)
				tr.wake()
			}
		})
	}
	t.Cleanup(tr.end)
	return tr
}

// after returns a channel closed once n more requests were sent.
func (tr *traffic) after(n int64) <-chan struct{} {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	w := trafficWaiter{n: tr.sent.Load() + n, done: make(chan struct{})}
	tr.waiters = append(tr.waiters, w)
	return w.done
}

func (tr *traffic) wake() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	kept := tr.waiters[:0]
	for _, w := range tr.waiters {
		if tr.sent.Load() >= w.n {
			close(w.done)
			continue
		}
		kept = append(kept, w)
	}
	tr.waiters = kept
}

func (tr *traffic) end() {
	tr.stop()
	tr.wg.Wait()
}

// within waits for ch, failing t after 10 s.
func within(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not within 10s", what)
	}
}
