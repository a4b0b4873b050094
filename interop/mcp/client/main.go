// Command client is the MCP conformance suite's client under test: an MCP
// client on the official Go SDK (github.com/modelcontextprotocol/go-sdk)
// whose HTTP requests go through an oauthtransport Transport with a
// ProtectedResource Source.
//
// The suite runs it as
//
//	client [flags] SERVER_URL
//
// with MCP_CONFORMANCE_SCENARIO (the scenario's name) and, for some
// scenarios, MCP_CONFORMANCE_CONTEXT (JSON: pre-registered clients, a
// signing key, an enterprise identity provider) in its environment. It
// connects, initializes, lists the tools and calls one, then exits 0; any
// failure exits 1. See ../SCENARIOS.md for what each scenario expects.
package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/oauthtransport/oauthtransport"
)

// cimdURL is the Client ID Metadata Document URL the auth/basic-cimd
// scenario expects as the client_id (the suite never fetches it).
const cimdURL = "https://conformance-test.local/client-metadata.json"

// scenarioContext is MCP_CONFORMANCE_CONTEXT: the fields the auth
// scenarios put there.
type scenarioContext struct {
	Name             string `json:"name"`
	ClientID         string `json:"client_id"`
	ClientSecret     string `json:"client_secret"`
	PrivateKeyPEM    string `json:"private_key_pem"`
	SigningAlgorithm string `json:"signing_algorithm"`
	IdPClientID      string `json:"idp_client_id"`
	IdPIDToken       string `json:"idp_id_token"`
	IdPIssuer        string `json:"idp_issuer"`
	IdPTokenEndpoint string `json:"idp_token_endpoint"`
}

func main() {
	timeout := flag.Duration("timeout", 25*time.Second, "bound on the whole run (the suite kills the client at 30 s)")
	quiet := flag.Bool("q", false, "do not log the Transport's debug events to stderr")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: client [flags] SERVER_URL")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 1 {
		flag.Usage()
		os.Exit(2)
	}
	serverURL := flag.Arg(flag.NArg() - 1) // the suite appends it last

	level := slog.LevelDebug
	if *quiet {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	err := run(ctx, serverURL, os.Getenv("MCP_CONFORMANCE_SCENARIO"), os.Getenv("MCP_CONFORMANCE_CONTEXT"), logger)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
	fmt.Println("client: ok")
}

func run(ctx context.Context, serverURL, scenario, contextJSON string, logger *slog.Logger) error {
	var sc scenarioContext
	if contextJSON != "" {
		if err := json.Unmarshal([]byte(contextJSON), &sc); err != nil {
			return fmt.Errorf("MCP_CONFORMANCE_CONTEXT: %w", err)
		}
	}
	cfg, err := clientConfig(scenario, &sc, logger)
	if err != nil {
		return err
	}
	logger.Info("starting", "scenario", scenario, "server", serverURL, "grant", grantName(cfg))

	src := oauthtransport.ProtectedResource(serverURL, cfg, oauthtransport.WithLoginTimeout(20*time.Second))
	tr, err := oauthtransport.New(src,
		oauthtransport.WithLogger(logger),
		oauthtransport.WithRefreshTimeout(15*time.Second),
	)
	if err != nil {
		return fmt.Errorf("oauthtransport.New: %w", err)
	}
	defer tr.Close()

	client := mcp.NewClient(&mcp.Implementation{Name: "oauthtransport-conformance-client", Version: "0.1.0"}, nil)
	transport := &mcp.StreamableClientTransport{
		Endpoint:   serverURL,
		HTTPClient: tr.Client(),
		// The scenario servers route only POST /mcp; the client needs no
		// server-initiated messages.
		DisableStandaloneSSE: true,
	}
	// The suite's servers speak 2025-11-25 (its auth scenarios are written
	// for it) and know nothing of the server/discover that go-sdk tries
	// first for newer versions: start with initialize.
	session, err := client.Connect(ctx, transport, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		return fmt.Errorf("connect (initialize): %w", err)
	}
	defer session.Close()
	logger.Info("initialized", "protocolVersion", session.InitializeResult().ProtocolVersion)
	return useTools(ctx, session, logger)
}

// useTools lists the server's tools and calls one (test-tool when there
// is one): the scenarios' step-up asks for more scope on tools/call.
func useTools(ctx context.Context, session *mcp.ClientSession, logger *slog.Logger) error {
	tools, err := session.ListTools(ctx, nil)
	if err != nil {
		return fmt.Errorf("tools/list: %w", err)
	}
	names := make([]string, len(tools.Tools))
	for i, t := range tools.Tools {
		names[i] = t.Name
	}
	logger.Info("tools/list", "tools", names)
	if len(tools.Tools) == 0 {
		return nil
	}
	name := tools.Tools[0].Name
	for _, t := range tools.Tools {
		if t.Name == "test-tool" {
			name = t.Name
		}
	}
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: map[string]any{}})
	if err != nil {
		return fmt.Errorf("tools/call %s: %w", name, err)
	}
	if res.IsError {
		return fmt.Errorf("tools/call %s: the tool reported an error", name)
	}
	logger.Info("tools/call", "tool", name, "content", len(res.Content))
	return nil
}

// clientConfig maps a scenario and its context onto the ClientConfig of
// ProtectedResource.
func clientConfig(scenario string, sc *scenarioContext, logger *slog.Logger) (*oauthtransport.ClientConfig, error) {
	cfg := &oauthtransport.ClientConfig{ClientName: "oauthtransport-conformance-client"}
	if sc.ClientID != "" {
		rc := oauthtransport.RegisteredClient{ClientID: sc.ClientID, ClientSecret: sc.ClientSecret}
		if sc.PrivateKeyPEM != "" {
			key, err := parsePrivateKey(sc.PrivateKeyPEM)
			if err != nil {
				return nil, fmt.Errorf("private_key_pem: %w", err)
			}
			rc.Key = key
			rc.Algorithm = sc.SigningAlgorithm
			rc.AuthMethod = "private_key_jwt"
		}
		cfg.Registered = map[string]oauthtransport.RegisteredClient{"": rc} // any issuer
	}
	if sc.IdPIDToken != "" {
		if sc.IdPTokenEndpoint == "" {
			return nil, errors.New("MCP_CONFORMANCE_CONTEXT: idp_id_token without idp_token_endpoint")
		}
		idToken := sc.IdPIDToken
		cfg.Enterprise = &oauthtransport.EnterpriseIdP{
			TokenURL: sc.IdPTokenEndpoint,
			ClientID: sc.IdPClientID,
			IDToken:  func(context.Context) (string, error) { return idToken, nil },
		}
	}
	if scenario == "auth/basic-cimd" {
		cfg.MetadataDocument = cimdURL
	}
	// The grant: client credentials for the machine scenarios (their
	// context has the same shape as pre-registration's, whose grant is the
	// authorization code); the enterprise flow when Enterprise is set;
	// otherwise a person's login, which Open "performs".
	if !strings.HasPrefix(scenario, "auth/client-credentials-") && cfg.Enterprise == nil {
		cfg.Open = openByGET(logger)
	}
	return cfg, nil
}

func grantName(cfg *oauthtransport.ClientConfig) string {
	switch {
	case cfg.Enterprise != nil:
		return "enterprise (token exchange + jwt-bearer)"
	case cfg.Open != nil:
		return "authorization code"
	default:
		return "client credentials"
	}
}

// openByGET plays the person: the suite's authorization endpoint
// redirects at once to the redirect URI with a code, so a GET that
// follows redirects delivers the code to the SDK's loopback listener.
func openByGET(logger *slog.Logger) func(ctx context.Context, authURL string) error {
	hc := &http.Client{Timeout: 20 * time.Second} // follows redirects (up to 10)
	return func(ctx context.Context, authURL string) error {
		logger.Info("authorization request", "url", redactQuery(authURL))
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return fmt.Errorf("authorization GET: %w", err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		logger.Info("authorization GET done", "status", resp.StatusCode, "final", redactQuery(resp.Request.URL.String()))
		if resp.StatusCode >= 400 {
			return fmt.Errorf("authorization GET: %s from %s", resp.Status, redactQuery(resp.Request.URL.String()))
		}
		return nil
	}
}

// redactQuery drops the query (state, code, code_challenge) from a URL
// for the log, keeping the parameter names.
func redactQuery(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.RawQuery == "" {
		return s
	}
	var names []string
	for k := range u.Query() {
		names = append(names, k)
	}
	u.RawQuery = ""
	return u.String() + "?{" + strings.Join(names, ",") + "}"
}

func parsePrivateKey(pemText string) (crypto.Signer, error) {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%T is not a crypto.Signer", key)
	}
	return signer, nil
}
