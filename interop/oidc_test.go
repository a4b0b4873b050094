package interop

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// oidcServer is the Node.js oidc-provider, started from oidc/server.mjs,
// with a protected API here that introspects its tokens.
type oidcServer struct {
	issuer   string
	api      *httptest.Server
	lifetime time.Duration
	denied   sync.Map     // access tokens the API refuses, whatever the provider says
	client   *http.Client // for introspection and the test routes (trusts the TLS server's CA)
}

// startOIDC starts oidc/server.mjs. Without node or the npm package
// (npm ci --prefix interop/oidc) the test is skipped, except under CI=true.
func startOIDC(t *testing.T, lifetime time.Duration, env ...string) *oidcServer {
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join("oidc", "node_modules", "oidc-provider", "package.json"))
	}
	if err != nil {
		msg := "oidc-provider not installed: run `npm ci --prefix interop/oidc` (needs Node.js): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	logFile, err := os.Create(filepath.Join(t.TempDir(), "oidc-provider.log"))
	require.NoError(t, err)
	cmd := exec.Command(node, "server.mjs", strconv.FormatFloat(lifetime.Seconds(), 'f', -1, 64))
	cmd.Dir = "oidc"
	cmd.Env = append(append(os.Environ(), "OIDC_CLIENT_JWKS="+clientJWKS()), env...)
	cmd.Stderr = logFile
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		stdin.Close() // the server exits when its stdin closes
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "oidc-provider did not start")
	port, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	require.True(t, ok, "unexpected first line from oidc-provider: %q", line)

	scheme := "http"
	for _, e := range env {
		if strings.HasPrefix(e, "OIDC_TLS_CERT=") {
			scheme = "https"
		}
	}
	s := &oidcServer{issuer: scheme + "://127.0.0.1:" + port, lifetime: lifetime, client: http.DefaultClient}
	s.api = httptest.NewServer(http.HandlerFunc(s.serveAPI))
	t.Cleanup(s.api.Close)
	return s
}

// serveAPI accepts a request only if the provider's introspection endpoint
// (RFC 7662) says its token is active.
func (s *oidcServer) serveAPI(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if _, denied := s.denied.Load(tok); ok && !denied {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, s.issuer+"/token/introspection",
			strings.NewReader(url.Values{"token": {tok}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("resource-server", "rs-secret-value")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var in struct {
				Active bool `json:"active"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&in)
			resp.Body.Close()
			if in.Active {
				_, _ = w.Write([]byte(`{"ok":true}`))
				return
			}
		}
	}
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	w.WriteHeader(http.StatusUnauthorized)
}

func (s *oidcServer) ClientCredentials() *clientcredentials.Config {
	return &clientcredentials.Config{ClientID: "cc-client", ClientSecret: "cc-secret-value", TokenURL: s.issuer + "/token",
		Scopes: []string{"api"}, AuthStyle: oauth2.AuthStyleInHeader}
}

func (s *oidcServer) RefreshConfig() *oauth2.Config {
	return &oauth2.Config{ClientID: "rt-client", ClientSecret: "rt-secret-value",
		Endpoint: oauth2.Endpoint{TokenURL: s.issuer + "/token", AuthStyle: oauth2.AuthStyleInHeader}}
}

func (s *oidcServer) NewRefreshToken(t *testing.T) string {
	resp, err := http.Post(s.issuer+"/test/refresh-token", "application/json", nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		RefreshToken string `json:"refresh_token"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.NotEmpty(t, out.RefreshToken)
	return out.RefreshToken
}

func (s *oidcServer) Revoke(t *testing.T, cfg *clientcredentials.Config, accessToken string) {
	req, _ := http.NewRequest(http.MethodPost, s.issuer+"/token/revocation",
		strings.NewReader(url.Values{"token": {accessToken}, "token_type_hint": {"access_token"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(cfg.ClientID, cfg.ClientSecret)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func (s *oidcServer) TokenCalls() int64 {
	resp, err := s.client.Get(s.issuer + "/test/stats")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var out struct {
		TokenCalls int64 `json:"token_calls"`
	}
	if json.NewDecoder(resp.Body).Decode(&out) != nil {
		return -1
	}
	return out.TokenCalls
}

func (s *oidcServer) APIURL() string          { return s.api.URL + "/things" }
func (s *oidcServer) Lifetime() time.Duration { return s.lifetime }

func TestOIDCProvider(t *testing.T) {
	t.Parallel()
	runScenarios(t, startOIDC(t, 4*time.Second))
}
