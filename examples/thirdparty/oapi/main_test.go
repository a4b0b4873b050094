package main

import (
	"context"
	"strings"
	"testing"
)

func TestGeneratedClientKeepsItsTypedResponses(t *testing.T) {
	r, err := run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(r.Pets, ",") != "Rex,Tom" || r.Replays != 1 {
		t.Errorf("pets %v after %d replays; want Rex,Tom after one", r.Pets, r.Replays)
	}
	if r.Limited != "slow down" || r.Refused != "not your pets" {
		t.Errorf("JSON429 %q, JSON403 %q", r.Limited, r.Refused)
	}
}
