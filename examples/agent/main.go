// Command agent calls a protected resource it has never seen, such as an
// MCP server, the way an agent or an MCP client does: the resource's 401
// names its metadata (RFC 9728), which names its authorization server;
// the client registers itself there (RFC 7591), a person logs in (the
// authorization code grant with PKCE), and the token, asked for that
// resource (RFC 8707), is kept and refreshed. A 403 insufficient_scope
// asks the person for the added scope, once.
//
//	go run ./examples/agent                                # a demo against an in-process resource and server
//	go run ./examples/agent https://mcp.example.com/mcp    # your resource: opens your browser
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store"
)

func main() {
	if len(os.Args) < 2 {
		demo()
		return
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		log.Fatal(err)
	}
	tr, err := agent(os.Args[1], oauthtransport.OpenBrowser, filepath.Join(dir, "oauthtransport-agent"))
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	status, body, err := call(tr, os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(status, body)
}

// agent is the program's Transport for resource: it follows the
// resource's lead, and keeps its client registration and tokens in dir.
func agent(resource string, open func(context.Context, string) error, dir string) (*oauthtransport.Transport, error) {
	src := oauthtransport.ProtectedResource(resource, &oauthtransport.ClientConfig{ClientName: "oauthtransport example agent", Open: open})
	return oauthtransport.New(src, oauthtransport.WithStore(store.NewFile(dir), "agent"))
}

// call sends an MCP initialize request (JSON-RPC over HTTP POST) and
// returns the status and the start of the answer.
func call(tr *oauthtransport.Transport, resource string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute) // a person may take a while to log in
	defer cancel()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},` +
		`"clientInfo":{"name":"oauthtransport-example-agent","version":"0.1.0"}}}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, resource, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	return resp.StatusCode, string(answer), nil
}

// demo runs the agent against an in-process authorization server and an
// MCP-like resource on another origin, with a browser that approves.
func demo() {
	as := oauthtest.New()
	defer as.Close()
	res := oauthtest.StartResource(as, oauthtest.ResourceScopes("mcp:read", "mcp:write"), oauthtest.RequireScopes("mcp:read"),
		oauthtest.ChallengeScopes("mcp:read"))
	defer res.Close()
	dir, err := os.MkdirTemp("", "oauthtransport-agent")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	fmt.Println("1. the first call: its 401 leads to the server; the agent registers and the person logs in")
	run(dir, res, as)
	fmt.Println("2. the resource now requires mcp:write: its 403 asks the person once more, for both scopes")
	res.SetRequiredScopes("mcp:read", "mcp:write")
	run(dir, res, as)
	fmt.Println("3. another run of the agent: the registration and the token are in its store; nobody is asked")
	run(dir, res, as)
}

// run is one run of the agent: one call, then what the server saw.
func run(dir string, res *oauthtest.Resource, as *oauthtest.Server) {
	tr, err := agent(res.ResourceURL, approve, dir)
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	status, body, err := call(tr, res.ResourceURL)
	if err != nil {
		log.Fatal(err)
	}
	var answer oauthtest.ResourceResponse
	_ = json.Unmarshal([]byte(body), &answer)
	fmt.Printf("   %d with scope %q; so far %d registration(s), %d login(s)\n", status, answer.Scope, as.Registrations(), len(as.AuthorizationRequests()))
}

// approve plays the person's browser: the authorization endpoint approves
// at once and redirects to the agent's loopback listener with the code.
func approve(ctx context.Context, authURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req) // follows the redirect to the loopback listener
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}
