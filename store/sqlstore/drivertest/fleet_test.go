package drivertest

// Four processes share one store for many keys, against an IdP that
// issues per-user rotating refresh tokens and detects reuse: each key is
// fetched once per token lifetime by the whole fleet, and no refresh token
// is presented twice.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/internal/redistest"
	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store"
	"github.com/oauthtransport/oauthtransport/store/redisstore"
	"github.com/oauthtransport/oauthtransport/store/sqlstore"
)

const (
	fleetProcesses = 4
	fleetKeys      = 100
	fleetLifetime  = 8 * time.Second
	fleetWindow    = 4 * time.Second // stale 4 s after issue
	fleetWorkers   = 16
)

// fleetPlan is what a child process is told, as JSON in a file.
type fleetPlan struct {
	Store    string            // "redis" or "postgres"
	Addr     string            // Redis address or PostgreSQL DSN
	Table    string            // sqlstore table
	TokenURL string            //
	APIURL   string            //
	Refresh  map[string]string // key → the first refresh token of its user
	Fresh    bool              // wait until every key's token is fresh
}

func TestKeyedFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Parallel()
	for _, kind := range []string{"redis", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			idp := oauthtest.NewServer(t, oauthtest.Lifetime(fleetLifetime))
			plan := fleetPlan{Store: kind, TokenURL: idp.TokenURL, APIURL: idp.APIURL, Refresh: map[string]string{}}
			for i := range fleetKeys {
				plan.Refresh[fmt.Sprintf("user-%d", i)] = idp.IssueRefreshToken()
			}
			var s store.Store
			if kind == "redis" {
				srv := redistest.Start(t)
				plan.Addr, s = srv.Addr(), redisstore.New(srv.Client(t))
			} else {
				plan.Addr, plan.Table = postgres(t).DSN(), table()
				var err error
				s, err = sqlstore.New(openPostgres(t), sqlstore.WithTable(plan.Table))
				require.NoError(t, err)
			}
			runFleet(t, plan)
			assert.Equal(t, int64(fleetKeys), idp.TokenCalls(), "one fetch per key for %d processes", fleetProcesses)

			time.Sleep(time.Until(staleAt(t, s, plan).Add(200 * time.Millisecond)))
			plan.Fresh = true
			runFleet(t, plan)
			assert.Equal(t, int64(2*fleetKeys), idp.TokenCalls(), "one refresh per key for the fleet once stale")
			assert.Zero(t, idp.Reuses(), "a refresh token was presented twice")
			assert.Zero(t, idp.APIRejected())
		})
	}
}

// staleAt is when the last key's token turns stale.
func staleAt(t *testing.T, s store.Store, plan fleetPlan) time.Time {
	var last time.Time
	for k := range plan.Refresh {
		tok, err := s.Load(context.Background(), "fleet/"+k)
		require.NoError(t, err, "key %s was not saved under fleet/%s", k, k)
		if at := tok.Expiry.Add(fleetWindow - fleetLifetime); at.After(last) {
			last = at
		}
	}
	return last
}

func runFleet(t *testing.T, plan fleetPlan) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plan.json")
	data, err := json.Marshal(plan)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o600))
	var wg sync.WaitGroup
	for i := range fleetProcesses {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), "DRIVERTEST_FLEET_PLAN="+path)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Errorf("process %d: %v\n%s", i, err, out.String())
			}
		})
	}
	wg.Wait()
}

// runChild runs a fleet process when the test binary was started as one.
func runChild() bool {
	path := os.Getenv("DRIVERTEST_FLEET_PLAN")
	if path == "" {
		return false
	}
	if err := fleetProcess(path); err != nil {
		fmt.Fprintln(os.Stderr, "fleet process:", err)
		os.Exit(1)
	}
	return true
}

func fleetProcess(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var plan fleetPlan
	if err := json.Unmarshal(data, &plan); err != nil {
		return err
	}
	s, closeStore, err := openFleetStore(plan)
	if err != nil {
		return err
	}
	defer closeStore()
	cfg := &oauth2.Config{ClientID: oauthtest.ClientID, ClientSecret: oauthtest.ClientSecret,
		Endpoint: oauth2.Endpoint{TokenURL: plan.TokenURL, AuthStyle: oauth2.AuthStyleInHeader}}
	tr, err := oauthtransport.NewKeyed(func(key string) (oauthtransport.Source, error) {
		return oauthtransport.RefreshToken(cfg, &oauth2.Token{RefreshToken: plan.Refresh[key]}), nil
	}, oauthtransport.WithStore(s, "fleet"), oauthtransport.WithRefreshWindow(fleetWindow))
	if err != nil {
		return err
	}
	defer tr.Close()
	if err := callEveryKey(tr, plan); err != nil {
		return err
	}
	if plan.Fresh {
		return waitFresh(tr, plan)
	}
	return nil
}

func openFleetStore(plan fleetPlan) (store.Store, func(), error) {
	if plan.Store == "redis" {
		c := redis.NewClient(redistest.Options(plan.Addr))
		return redisstore.New(c), func() { _ = c.Close() }, nil
	}
	db, err := sql.Open("pgx", plan.Addr)
	if err != nil {
		return nil, nil, err
	}
	s, err := sqlstore.New(db, sqlstore.WithTable(plan.Table))
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return s, func() { _ = db.Close() }, nil
}

// callEveryKey sends one request per key from a pool of workers.
func callEveryKey(tr *oauthtransport.Transport, plan fleetPlan) error {
	keys := make(chan string)
	errs := make(chan error, len(plan.Refresh))
	var wg sync.WaitGroup
	for range fleetWorkers {
		wg.Go(func() {
			for k := range keys {
				errs <- get(tr, k, plan.APIURL)
			}
		})
	}
	for k := range plan.Refresh {
		keys <- k
	}
	close(keys)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func get(tr *oauthtransport.Transport, key, url string) error {
	req, err := http.NewRequestWithContext(oauthtransport.WithKey(context.Background(), key), http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("key %s: %w", key, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("key %s: status %d", key, resp.StatusCode)
	}
	return nil
}

// waitFresh waits until every key's token in this process is fresh: a
// stale token adopted from the store is refreshed in the background, by
// this process or a peer whose result this one adopts.
func waitFresh(tr *oauthtransport.Transport, plan fleetPlan) error {
	deadline := time.Now().Add(15 * time.Second)
	for k := range plan.Refresh {
		for {
			tok, err := tr.Token(oauthtransport.WithKey(context.Background(), k))
			if err != nil {
				return fmt.Errorf("key %s: %w", k, err)
			}
			if time.Until(tok.Expiry) > fleetWindow {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("key %s: the stale token was never refreshed (stats %+v)", k, tr.Stats())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}
