package oauthtransport

// GitHub Actions' OIDC token: a job granted `permissions: id-token: write`
// finds an endpoint and a bearer token for it in its environment, and
// gets a JWT for the audience it names.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/oauthtransport/oauthtransport/internal/wire"
)

// githubSource names GitHub Actions in errors.
const githubSource = "GitHub Actions OIDC"

// AssertionFromGitHubActions returns an [AssertionFunc] that gets the
// job's OIDC token from GitHub Actions for audience (the "aud" the
// authorization server expects; empty: GitHub's default, the repository
// owner's URL). It reads ACTIONS_ID_TOKEN_REQUEST_URL and
// ACTIONS_ID_TOKEN_REQUEST_TOKEN from the environment at each request,
// which GitHub sets for jobs with `permissions: id-token: write`, and
// sends GET to that URL with the audience added to its query and the
// request token as a bearer token, over https (http only to loopback),
// following no redirect to another origin; the answer's "value" is the
// JWT.
//
// A token is reused until the last quarter of its life (from its iat
// claim to its exp claim; at least 30 s before exp). When a request
// for a new one fails, the last good token is returned until 30 s before
// its exp; after that, the error is an [*AssertionError] naming "GitHub
// Actions OIDC", with the endpoint's status but never its query, the
// request token or an assertion. It is safe for concurrent use.
func AssertionFromGitHubActions(audience string) AssertionFunc {
	g := &githubAssertion{audience: audience}
	return g.assertion
}

type githubAssertion struct {
	audience string
	last     lastAssertion
}

func (g *githubAssertion) assertion(ctx context.Context) (string, error) {
	if a, ok := g.last.fresh(); ok {
		return a, nil
	}
	a, err := g.fetch(ctx)
	return g.last.keep(githubSource, a, err)
}

// fetch asks the job's OIDC endpoint for a token.
func (g *githubAssertion) fetch(ctx context.Context) (string, error) {
	req, err := g.request(ctx)
	if err != nil {
		return "", err
	}
	resp, err := defaultTokenClient.Do(req)
	if err != nil {
		return "", errors.New(wire.OneLine(wire.ScrubURLs(err.Error()), 300)) // *url.Error quotes the URL, query included
	}
	defer resp.Body.Close()
	where := wire.RedactURL(req.URL)
	if resp.StatusCode != http.StatusOK {
		wire.Drain(resp)
		return "", fmt.Errorf("GET %s: %s", where, resp.Status)
	}
	var out struct {
		Value string `json:"value"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAssertionBytes)).Decode(&out); err != nil || out.Value == "" {
		return "", fmt.Errorf("GET %s: the answer is not JSON with a \"value\"", where)
	}
	return out.Value, nil
}

// request builds the request for the token, from the environment.
func (g *githubAssertion) request(ctx context.Context) (*http.Request, error) {
	raw, tok := os.Getenv("ACTIONS_ID_TOKEN_REQUEST_URL"), os.Getenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
	if raw == "" || tok == "" {
		return nil, errors.New("ACTIONS_ID_TOKEN_REQUEST_URL or ACTIONS_ID_TOKEN_REQUEST_TOKEN is not set: " +
			"not a GitHub Actions job, or the job lacks `permissions: id-token: write`")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, errors.New("ACTIONS_ID_TOKEN_REQUEST_URL is not an absolute URL")
	}
	if g.audience != "" {
		q := u.Query()
		q.Set("audience", g.audience)
		u.RawQuery = q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, errors.New("ACTIONS_ID_TOKEN_REQUEST_URL is not a URL to GET")
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	return req, nil
}
