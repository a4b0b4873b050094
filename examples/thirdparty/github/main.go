// Command github runs go-github over the Transport, in
// WithStatusErrors(false) mode, against a local stand-in for the GitHub
// API: a rejected token is replaced and the request replayed underneath
// go-github, and go-github keeps its own error types (*ErrorResponse,
// *AbuseRateLimitError, *RateLimitError) and its rate-limit memory.
//
//	go run ./examples/thirdparty/github
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-github/v75/github"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

func main() {
	r, err := run(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%+v\n", *r)
}

// report is what go-github saw.
type report struct {
	Login                       string
	Replays                     int64
	NotFound, Abuse, RateLimit  bool
	Remembered                  bool // go-github refused a call itself, from its rate-limit memory
	AbuseRetryAfter, RateRemain string
}

func run(ctx context.Context) (*report, error) {
	idp := oauthtest.New()
	defer idp.Close()
	var hits atomic.Int64
	api := httptest.NewServer(standIn(idp, &hits))
	defer api.Close()

	tr, err := oauthtransport.New(oauthtransport.ClientCredentials(idp.ClientCredentials()), oauthtransport.WithStatusErrors(false))
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	gh, err := github.NewClient(tr.Client()).WithEnterpriseURLs(api.URL+"/", api.URL+"/")
	if err != nil {
		return nil, err
	}

	// The API stops accepting the token: the Transport replays with a new one.
	tok, err := tr.Token(ctx)
	if err != nil {
		return nil, err
	}
	idp.Revoke(tok.AccessToken)
	user, _, err := gh.Users.Get(ctx, "")
	if err != nil {
		return nil, err
	}
	r := &report{Login: user.GetLogin(), Replays: tr.Stats().Replays}

	_, _, err = gh.Repositories.Get(ctx, "octo", "missing")
	var notFound *github.ErrorResponse
	r.NotFound = errors.As(err, &notFound) && notFound.Response.StatusCode == http.StatusNotFound

	_, _, err = gh.Repositories.Get(ctx, "octo", "secondary")
	var abuse *github.AbuseRateLimitError
	if r.Abuse = errors.As(err, &abuse); r.Abuse && abuse.RetryAfter != nil {
		r.AbuseRetryAfter = abuse.RetryAfter.String()
	}

	before := hits.Load()
	_, _, err = gh.Repositories.Get(ctx, "octo", "secondary")
	r.Remembered = errors.As(err, &abuse) && hits.Load() == before

	gh, _ = github.NewClient(tr.Client()).WithEnterpriseURLs(api.URL+"/", api.URL+"/") // no memory yet
	_, _, err = gh.Repositories.Get(ctx, "octo", "primary")
	var limit *github.RateLimitError
	if r.RateLimit = errors.As(err, &limit); r.RateLimit {
		r.RateRemain = strconv.Itoa(limit.Rate.Remaining)
	}
	return r, nil
}

// standIn answers as the GitHub API does, accepting only live tokens.
func standIn(idp *oauthtest.Server, hits *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if !idp.Live(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")) {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}`)
			return
		}
		switch r.URL.Path {
		case "/api/v3/user":
			fmt.Fprint(w, `{"login":"octocat"}`)
		case "/api/v3/repos/octo/secondary":
			w.Header().Set("Retry-After", "3600") // longer than MaxRetryAfter: not waited for
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"message":"You have exceeded a secondary rate limit.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}`)
		case "/api/v3/repos/octo/primary":
			w.Header().Set("X-RateLimit-Limit", "5000")
			w.Header().Set("X-RateLimit-Remaining", "0")
			w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10))
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"message":"API rate limit exceeded for user ID 1."}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"message":"Not Found"}`)
		}
	})
}
