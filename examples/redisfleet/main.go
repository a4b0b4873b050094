// Command redisfleet runs four replicas of a service that share one token
// through Redis: the fleet fetches one token, not four, and refreshes it
// once.
//
//	REDIS_ADDR=localhost:6379 go run ./examples/redisfleet
//
// Without REDIS_ADDR it starts a redis-server of its own (Debian package
// redis-server) on a unix socket in a temporary directory.
package main

import (
	"fmt"
	"log"
	"os"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/internal/oauthtest"
	"github.com/oauthtransport/oauthtransport/internal/redistest"
	"github.com/oauthtransport/oauthtransport/store/redisstore"
)

func main() {
	opts, stop := redisOptions()
	defer stop()
	idp := oauthtest.New(oauthtest.Lifetime(4 * time.Second))
	defer idp.Close()

	const replicas, requests = 4, 50
	var wg sync.WaitGroup
	for r := range replicas {
		wg.Go(func() {
			// Each replica has its own Redis client and Transport, as
			// separate processes would.
			client := redis.NewClient(opts)
			defer client.Close()
			tr, err := oauthtransport.New(oauthtransport.ClientCredentials(idp.ClientCredentials()),
				oauthtransport.WithStore(redisstore.New(client), "orders-api"))
			if err != nil {
				log.Fatal(err)
			}
			defer tr.Close()
			deadline := time.Now().Add(3 * time.Second) // past the refresh window
			var inner sync.WaitGroup
			for range requests {
				inner.Go(func() {
					for time.Now().Before(deadline) {
						resp, err := tr.Client().Get(idp.APIURL + "orders")
						if err != nil {
							log.Fatalf("replica %d: %v", r, err)
						}
						resp.Body.Close()
						time.Sleep(20 * time.Millisecond)
					}
				})
			}
			inner.Wait()
			st := tr.Stats()
			fmt.Printf("replica %d: fetched %d, adopted %d from Redis\n", r, st.TokenFetches, st.Adopted)
		})
	}
	wg.Wait()
	fmt.Printf("token endpoint calls for %d replicas (the first token and one refresh): %d\n", replicas, idp.TokenCalls())
}

// redisOptions connects to REDIS_ADDR, or starts a private redis-server.
func redisOptions() (*redis.Options, func()) {
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		return redistest.Options(addr), func() {}
	}
	srv, err := redistest.Run()
	if err != nil {
		log.Fatalf("set REDIS_ADDR, or: %v", err)
	}
	fmt.Println("started redis-server on", srv.Socket)
	return srv.Options(), srv.Stop
}
