package main

import (
	"context"
	"testing"
)

func TestGoogleAPIClientKeepsItsOwnErrors(t *testing.T) {
	r, err := run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Lists != 2 || r.Replays != 1 || r.Retries != 1 {
		t.Errorf("lists %d, replays %d, retries %d; want 2 lists after one replay and one retry", r.Lists, r.Replays, r.Retries)
	}
	if r.DailyCode != 403 || r.DailyReason != "dailyLimitExceeded" {
		t.Errorf("the client's own *googleapi.Error: %d %q", r.DailyCode, r.DailyReason)
	}
}
