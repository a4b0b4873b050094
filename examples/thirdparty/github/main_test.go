package main

import (
	"context"
	"testing"
)

func TestGoGitHubKeepsItsOwnErrors(t *testing.T) {
	r, err := run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Login != "octocat" || r.Replays != 1 {
		t.Errorf("after a revoked token: login %q, replays %d; want octocat after one replay", r.Login, r.Replays)
	}
	if !r.NotFound || !r.Abuse || !r.RateLimit || !r.Remembered {
		t.Errorf("go-github's errors: %+v", *r)
	}
	if r.AbuseRetryAfter != "1h0m0s" || r.RateRemain != "0" {
		t.Errorf("go-github read the headers: %+v", *r)
	}
}
