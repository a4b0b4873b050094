package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// hydraServer is Ory Hydra v2.3.0, built from the module interop/hydra/tools
// (so that nothing else depends on it) and run on loopback with an
// in-memory database: its public port behind a proxy here, which is the
// issuer and counts token requests per grant type; its admin port
// (introspection, clients, the login and consent APIs); and a login and
// consent app that accepts every challenge, as a person who approves.
// Hydra v2.3.0 has no device grant and sends no iss in authorization
// responses.
type hydraServer struct {
	issuer string // from Hydra's metadata: the proxy's URL
	admin  string
	app    *httptest.Server // the login and consent app
	mu     sync.Mutex
	grants map[string]exchanges
	named  map[[2]string]int64 // successful token requests by grant type and the resource (RFC 8707) they named
}

const hydraClient = "native-client"

// hydraBuild is the Hydra binary built for this test run, in a directory
// TestMain removes once the tests have run.
var hydraBuild struct {
	once     sync.Once
	dir, bin string
	err      error
}

// hydraBinary builds Hydra once per test run with `go build` in
// interop/hydra/tools (a module of its own), with SQLite (cgo, the tags of
// Hydra's Makefile) for its in-memory database, unless HYDRA_BIN names a
// binary built so. `go tool hydra` cannot: it takes no build tags.
func hydraBinary() (string, error) {
	hydraBuild.once.Do(func() {
		if hydraBuild.bin = os.Getenv("HYDRA_BIN"); hydraBuild.bin != "" {
			return
		}
		gocmd, err := exec.LookPath("go")
		if err == nil {
			hydraBuild.dir, err = os.MkdirTemp("", "interop-hydra-")
		}
		if err != nil {
			hydraBuild.err = err
			return
		}
		bin := filepath.Join(hydraBuild.dir, "hydra")
		cmd := exec.Command(gocmd, "build", "-tags=sqlite,sqlite_omit_load_extension", "-o", bin, "github.com/ory/hydra/v2")
		cmd.Dir = filepath.Join("hydra", "tools")
		cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			hydraBuild.err = fmt.Errorf("go build hydra: %w: %s", err, bytes.TrimSpace(out))
			return
		}
		hydraBuild.bin = bin
	})
	return hydraBuild.bin, hydraBuild.err
}

// removeHydraBuild removes the binary built for this run, if any.
func removeHydraBuild() {
	if hydraBuild.dir != "" {
		_ = os.RemoveAll(hydraBuild.dir)
	}
}

// startHydra starts Hydra with its proxy, its app and native-client; all
// stop when t ends.
func startHydra(t *testing.T) *hydraServer { return startHydraWith(t, nil) }

// startHydraWith is startHydra with more settings (environment variables)
// from more, given the proxy's URL (the issuer); nil adds none.
func startHydraWith(t *testing.T, more func(front string) []string) *hydraServer {
	bin, err := hydraBinary() // skipped without one, except under CI=true
	if err != nil {
		msg := "Ory Hydra could not be built (set HYDRA_BIN to a hydra v2.3.0 binary): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	h := &hydraServer{grants: map[string]exchanges{}, named: map[[2]string]int64{}}
	target := &url.URL{Scheme: "http"} // Hydra's public port, set by serveHydra
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = http.DefaultTransport.(*http.Transport).Clone()
	front := httptest.NewServer(h.countTokenRequests(proxy))
	t.Cleanup(front.Close)
	t.Cleanup(proxy.Transport.(*http.Transport).CloseIdleConnections)
	h.app = httptest.NewServer(h.loginAndConsent())
	t.Cleanup(h.app.Close)

	var extra []string
	if more != nil {
		extra = more(front.URL)
	}
	h.serve(t, bin, target, func(public, admin string) []string {
		return append(hydraEnv(public, admin, front.URL, h.app.URL), extra...)
	})
	h.issuer = h.discoverIssuer(t, front.URL)
	h.createClient(t)
	return h
}

// hydraEnv configures Hydra: in memory, on loopback, no telemetry, PKCE
// enforced for public clients, URLs through the proxy, the app's pages.
// Nothing else of the environment reaches it: Hydra reads any variable
// named like a setting.
func hydraEnv(public, admin, front, app string) []string {
	pubHost, pubPort, _ := net.SplitHostPort(public)
	admHost, admPort, _ := net.SplitHostPort(admin)
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()},
		"DSN=memory", "SQA_OPT_OUT=true", "LOG_LEVEL=warn",
		"SERVE_PUBLIC_HOST="+pubHost, "SERVE_PUBLIC_PORT="+pubPort,
		"SERVE_ADMIN_HOST="+admHost, "SERVE_ADMIN_PORT="+admPort,
		"URLS_SELF_ISSUER="+front, "URLS_SELF_PUBLIC="+front,
		"URLS_LOGIN="+app+"/login", "URLS_CONSENT="+app+"/consent", "URLS_ERROR="+app+"/error",
		"SECRETS_SYSTEM=interop-system-secret-not-secret",
		"OAUTH2_PKCE_ENFORCED_FOR_PUBLIC_CLIENTS=true",
		"TTL_ACCESS_TOKEN=1h", "TTL_REFRESH_TOKEN=1h",
	)
}

// runHydra runs `hydra serve all --dev` (http on loopback) until t ends,
// its output in a file that is never printed (it could hold a token). The
// channel is closed when Hydra exits.
func runHydra(t *testing.T, bin string, env []string) <-chan struct{} {
	logFile, err := os.Create(filepath.Join(t.TempDir(), "hydra.log"))
	require.NoError(t, err)
	cmd := exec.Command(bin, "serve", "all", "--dev", "--sqa-opt-out")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	dieWithTest(cmd)
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
	})
	return done
}

// freePort returns a loopback address no one listens on just now.
func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// serve runs Hydra on two free loopback ports until it is ready, and
// points target at its public port. A port found free can be taken by
// another test before Hydra binds it (Hydra then exits at start): it is
// started again on other ports, three times at most.
func (h *hydraServer) serve(t *testing.T, bin string, target *url.URL, env func(public, admin string) []string) {
	for attempt := 1; ; attempt++ {
		public, admin := freePort(t), freePort(t)
		h.admin, target.Host = "http://"+admin, public
		if h.waitReady(t, runHydra(t, bin, env(public, admin))) {
			return
		}
		if attempt == 3 {
			t.Fatal("Hydra exited at start three times (its logs are hydra.log in the test's temporary directories)")
		}
		t.Logf("Hydra exited at start on ports %s and %s; starting it again on others", public, admin)
	}
}

// waitReady polls the admin port's readiness, within a loose bound; false
// when Hydra exited first.
func (h *hydraServer) waitReady(t *testing.T, exited <-chan struct{}) bool {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		resp, err := http.Get(h.admin + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("Hydra was not ready within a minute")
	return false
}

// countTokenRequests passes every request to Hydra's public port and
// counts token requests per grant type (those that succeeded also by the
// resources they named, which Hydra ignores). Hydra enforces PKCE for public
// clients, so a code exchange that succeeded with a verifier had it
// checked against an S256 challenge (the only method it allows).
func (h *hydraServer) countTokenRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/oauth2/token" {
			next.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		h.mu.Lock()
		defer h.mu.Unlock()
		e := h.grants[form.Get("grant_type")]
		switch {
		case rec.status != http.StatusOK:
			e.Error++
		case form.Get("code_verifier") != "":
			e.Success++
			e.PKCE++
		default:
			e.Success++
		}
		h.grants[form.Get("grant_type")] = e
		for _, res := range form["resource"] {
			if rec.status == http.StatusOK {
				h.named[[2]string{form.Get("grant_type"), res}]++
			}
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// loginAndConsent is the app Hydra sends the browser to: it accepts every
// login as person-1 and grants every scope asked for (offline_access
// included, so that Hydra issues a refresh token), then sends the browser
// back to Hydra.
func (h *hydraServer) loginAndConsent() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		h.accept(w, r, "login", r.URL.Query().Get("login_challenge"), map[string]any{"subject": "person-1"})
	})
	mux.HandleFunc("GET /consent", func(w http.ResponseWriter, r *http.Request) {
		challenge := r.URL.Query().Get("consent_challenge")
		var asked struct {
			Scope    []string `json:"requested_scope"`
			Audience []string `json:"requested_access_token_audience"`
		}
		if err := h.adminJSON(r.Context(), http.MethodGet, "/admin/oauth2/auth/requests/consent?consent_challenge="+url.QueryEscape(challenge), nil, &asked); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		h.accept(w, r, "consent", challenge, map[string]any{"grant_scope": asked.Scope, "grant_access_token_audience": asked.Audience})
	})
	return mux
}

// accept accepts a login or consent challenge and redirects the browser
// where Hydra says.
func (h *hydraServer) accept(w http.ResponseWriter, r *http.Request, kind, challenge string, body map[string]any) {
	var out struct {
		RedirectTo string `json:"redirect_to"`
	}
	path := "/admin/oauth2/auth/requests/" + kind + "/accept?" + kind + "_challenge=" + url.QueryEscape(challenge)
	if err := h.adminJSON(r.Context(), http.MethodPut, path, body, &out); err != nil || out.RedirectTo == "" {
		http.Error(w, "accepting the "+kind+" failed", http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, out.RedirectTo, http.StatusFound)
}

// adminJSON calls Hydra's admin API; errors name the status, not the body.
func (h *hydraServer) adminJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.admin+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return redact(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("hydra admin %s %s answered %d", method, strings.SplitN(path, "?", 2)[0], resp.StatusCode)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// discoverIssuer reads the issuer from Hydra's metadata, through the proxy.
func (h *hydraServer) discoverIssuer(t *testing.T, front string) string {
	resp, err := http.Get(front + "/.well-known/openid-configuration")
	require.NoError(t, err)
	defer resp.Body.Close()
	var meta struct {
		Issuer string `json:"issuer"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&meta))
	require.NotEmpty(t, meta.Issuer)
	return strings.TrimSuffix(meta.Issuer, "/")
}

// createClient registers native-client: public (token_endpoint_auth_method
// none), the code and refresh grants, a loopback redirect (Hydra, through
// fosite, accepts it on any port, RFC 8252 §7.3).
func (h *hydraServer) createClient(t *testing.T) {
	err := h.adminJSON(context.Background(), http.MethodPost, "/admin/clients", map[string]any{
		"client_id": hydraClient, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"redirect_uris": []string{"http://127.0.0.1/callback"}, "scope": "openid offline_access",
	}, nil)
	require.NoError(t, err)
}

func (h *hydraServer) Issuer() string        { return h.issuer }
func (h *hydraServer) RevocationURL() string { return h.issuer + "/oauth2/revoke" }

// NativeConfig is native-client; Hydra v2.3.0 has no device grant, so no
// DeviceAuthURL.
func (h *hydraServer) NativeConfig(redirectURL string) *oauth2.Config {
	return &oauth2.Config{ClientID: hydraClient, RedirectURL: redirectURL, Scopes: []string{"openid", "offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: h.issuer + "/oauth2/auth", TokenURL: h.issuer + "/oauth2/token",
			AuthStyle: oauth2.AuthStyleInParams}}
}

// Active asks the admin port's introspection endpoint.
func (h *hydraServer) Active(ctx context.Context, token string) (bool, error) {
	return introspect(ctx, h.admin+"/admin/oauth2/introspect", token, nil)
}

func (h *hydraServer) Exchanges(_ context.Context, grantType string) (exchanges, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.grants[grantType], nil
}

var _ personServer = (*hydraServer)(nil)
var _ personServer = (*oidcServer)(nil)
