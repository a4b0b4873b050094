package oauthtransport

import (
	"encoding/base64"
	"strconv"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

func TestSchedule(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return now.Add(d) }
	tok := func(life time.Duration, expiresIn int64) *oauth2.Token {
		return &oauth2.Token{AccessToken: "a", Expiry: at(life), ExpiresIn: expiresIn}
	}
	jwt := func(exp time.Time) string {
		enc := base64.RawURLEncoding.EncodeToString
		return enc([]byte(`{}`)) + "." + enc([]byte(`{"exp":`+strconv.FormatInt(exp.Unix(), 10)+`}`)) + ".s"
	}
	def := schedulePolicy{skew: 10 * time.Second}
	tests := []struct {
		name            string
		tok             *oauth2.Token
		p               schedulePolicy
		jitter          float64
		staleAt, expire time.Time
	}{
		{"an hour: window 5 min (capped), skew 10 s", tok(time.Hour, 3600), def, 0, at(55 * time.Minute), at(time.Hour - 10*time.Second)},
		{"an hour, half the jitter: window 5 min 30 s", tok(time.Hour, 3600), def, 0.5, at(54*time.Minute + 30*time.Second), at(time.Hour - 10*time.Second)},
		{"8 min: window a quarter", tok(8*time.Minute, 480), def, 0, at(6 * time.Minute), at(8*time.Minute - 10*time.Second)},
		{"20 s: skew a tenth, window a quarter", tok(20*time.Second, 20), def, 0, at(15 * time.Second), at(18 * time.Second)},
		{"loaded from a store: window measured against the granted lifetime", tok(30*time.Minute, 3600), def, 0, at(25 * time.Minute), at(30*time.Minute - 10*time.Second)},
		{"explicit window", tok(time.Hour, 3600), schedulePolicy{window: 20 * time.Minute, windowSet: true, skew: time.Minute}, 0, at(40 * time.Minute), at(59 * time.Minute)},
		{"explicit window beyond half the lifetime", tok(time.Hour, 3600), schedulePolicy{window: 50 * time.Minute, windowSet: true}, 0, at(30 * time.Minute), at(time.Hour)},
		{"window 0: no background refresh", tok(time.Hour, 3600), schedulePolicy{windowSet: true, skew: time.Minute}, 0, time.Time{}, at(59 * time.Minute)},
		{"window not above the skew: none", tok(time.Hour, 3600), schedulePolicy{window: time.Second, windowSet: true, skew: time.Minute}, 0, time.Time{}, at(59 * time.Minute)},
		{"already expired", tok(-time.Minute, 3600), def, 0, at(-6 * time.Minute), at(-time.Minute - 10*time.Second)},
		{"no expiry: lives until a 401", &oauth2.Token{AccessToken: "opaque"}, def, 0, time.Time{}, time.Time{}},
		{"a JWT's exp", &oauth2.Token{AccessToken: jwt(at(time.Hour))}, def, 0, at(55 * time.Minute), at(time.Hour - 10*time.Second)},
	}
	for _, tt := range tests {
		staleAt, expire := schedule(tt.tok, now, tt.p, tt.jitter)
		if !staleAt.Equal(tt.staleAt) || !expire.Equal(tt.expire) {
			t.Errorf("%s: stale %v, expire %v; want %v, %v", tt.name, staleAt.Sub(now), expire.Sub(now), tt.staleAt.Sub(now), tt.expire.Sub(now))
		}
	}
}

func TestNewer(t *testing.T) {
	now := time.Now()
	rec := func(gen uint64, obtained, expiry time.Duration) *record {
		return &record{tok: &oauth2.Token{AccessToken: "a", Expiry: now.Add(expiry)}, meta: metaOf(store.Meta{Generation: gen, Obtained: now.Add(obtained)})}
	}
	tests := []struct {
		name string
		a, b *record
		want bool
	}{
		{"higher generation", rec(3, 0, 0), rec(2, time.Hour, time.Hour), true},
		{"lower generation, later expiry", rec(2, time.Hour, time.Hour), rec(3, 0, 0), false},
		{"same generation, obtained later", rec(3, time.Second, 0), rec(3, 0, 0), true},
		{"the same record", rec(3, 0, 0), rec(3, 0, 0), false},
		{"unversioned: later expiry", rec(0, 0, time.Hour), rec(5, 0, time.Minute), true},
		{"unversioned: earlier expiry", rec(0, 0, time.Minute), rec(5, 0, time.Hour), false},
		{"anything beats nothing", rec(0, 0, 0), nil, true},
		{"nothing beats nothing", nil, nil, false},
		{"nothing is not newer", nil, rec(1, 0, 0), false},
	}
	for _, tt := range tests {
		if got := newer(tt.a, tt.b); got != tt.want {
			t.Errorf("%s: newer = %v, want %v", tt.name, got, tt.want)
		}
	}
}
