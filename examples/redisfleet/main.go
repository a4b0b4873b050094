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
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
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

// redisOptions connects to REDIS_ADDR, or starts a private redis-server on
// a unix socket (apt-get install redis-server).
func redisOptions() (*redis.Options, func()) {
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		if o, err := redis.ParseURL(addr); err == nil {
			return o, func() {}
		}
		return &redis.Options{Addr: addr}, func() {}
	}
	dir, err := os.MkdirTemp("", "redisfleet")
	if err != nil {
		log.Fatal(err)
	}
	sock := filepath.Join(dir, "redis.sock")
	cmd := exec.Command("redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700", "--dir", dir, "--save", "")
	if err := cmd.Start(); err != nil {
		log.Fatalf("set REDIS_ADDR, or install redis-server: %v", err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = os.RemoveAll(dir) }
	opts := &redis.Options{Network: "unix", Addr: sock}
	c := redis.NewClient(opts)
	defer c.Close()
	for start := time.Now(); c.Ping(context.Background()).Err() != nil; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			stop()
			log.Fatal("redis-server did not start")
		}
	}
	fmt.Println("started redis-server on", sock)
	return opts, stop
}
