// Command quickstart shows oauthtransport at work, with nothing to set up.
//
// It starts an OAuth2 authorization server and a protected API on loopback,
// issuing tokens that live two seconds, then drives concurrent traffic
// through one Transport for a few seconds, across several token lifetimes,
// and revokes the token in use half-way. It prints what happened.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

func main() {
	const (
		lifetime = 2 * time.Second
		duration = 5 * time.Second
		workers  = 8
	)
	idp := oauthtest.New(oauthtest.Lifetime(lifetime), oauthtest.TokenDelay(20*time.Millisecond))
	defer idp.Close()
	fmt.Printf("authorization server and API on %s, tokens live %v\n", idp.URL, lifetime)

	tr, err := oauthtransport.New(oauthtransport.ClientCredentials(idp.ClientCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	client := tr.Client()

	var requests, failures atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				resp, err := client.Get(idp.APIURL + "orders")
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					fmt.Fprintln(os.Stderr, "request failed:", err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				time.Sleep(2 * time.Millisecond)
			}
		})
	}

	time.Sleep(duration / 2)
	tok, err := tr.Token(context.Background())
	if err == nil && idp.Revoke(tok.AccessToken) {
		fmt.Println("revoked the token in use, mid-way")
	}
	wg.Wait()

	st := tr.Stats()
	fmt.Printf("requests:             %d over %v from %d goroutines\n", requests.Load(), duration, workers)
	fmt.Printf("token fetches:        %d (the token endpoint saw %d)\n", st.TokenFetches, idp.TokenCalls())
	fmt.Printf("background refreshes: %d, while requests kept using the old token\n", st.BackgroundRefreshes)
	fmt.Printf("replays after a 401:  %d (tokens dropped: %d)\n", st.Replays, st.Invalidations)
	fmt.Printf("waited for a token:   %d requests\n", st.Waits)
	fmt.Printf("failures:             %d\n", failures.Load())
	if failures.Load() != 0 {
		os.Exit(1)
	}
}
