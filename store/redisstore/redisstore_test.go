package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/internal/redistest"
	"github.com/oauthtransport/oauthtransport/store"
	"github.com/oauthtransport/oauthtransport/store/redisstore"
	"github.com/oauthtransport/oauthtransport/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var prefixes atomic.Int64

func newStore(t *testing.T, srv *redistest.Server) *redisstore.Store {
	// A prefix per store keeps the subtests' keys apart on one server.
	return redisstore.New(srv.Client(t), redisstore.WithPrefix(fmt.Sprintf("t%d:", prefixes.Add(1))))
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store { return newStore(t, srv) })
}

func TestKeysShareHashSlotAndExpire(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	s := redisstore.New(c, redisstore.WithPrefix("p:"), redisstore.WithExpiryMargin(time.Minute))
	if err := s.Save(ctx, "svc", &oauth2.Token{AccessToken: "a", Expiry: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	ttl := c.PTTL(ctx, "p:{svc}").Val()
	if ttl < 60*time.Minute || ttl > 61*time.Minute+time.Second {
		t.Errorf("TTL = %v, want about 1h1m", ttl)
	}
	unlock, err := s.Lock(ctx, "svc", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Exists(ctx, "p:{svc}:lock").Val(); got != 1 {
		t.Fatalf("lock key p:{svc}:lock missing: it must share the token's hash tag {svc}")
	}
	unlock()
	// With a refresh token the record does not expire with the access token.
	if err := s.Save(ctx, "svc", &oauth2.Token{AccessToken: "a", RefreshToken: "r", Expiry: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if ttl := c.PTTL(ctx, "p:{svc}").Val(); ttl != -1 {
		t.Errorf("TTL = %v, want none: the refresh token must not vanish", ttl)
	}
}

func TestExpiredLockIsNotReleasedByOldHolder(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	s := newStore(t, srv)
	old, err := s.Lock(ctx, "k", 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the lock expires
	current, err := s.Lock(ctx, "k", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	old() // must not release current's lock
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if u, err := s.Lock(short, "k", time.Second); err == nil {
		u()
		t.Fatal("the old holder released the new holder's lock")
	}
	current()
}

func TestRedisDownIsAnError(t *testing.T) {
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: t.TempDir() + "/none.sock", MaxRetries: -1})
	defer c.Close()
	s := redisstore.New(c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.Lock(ctx, "k", time.Second); err == nil || ctx.Err() != nil {
		t.Fatalf("Lock with Redis down: err = %v, want an immediate error", err)
	}
	if _, err := s.Load(ctx, "k"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Load with Redis down: err = %v, want a connection error", err)
	}
}
