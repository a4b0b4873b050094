// Command filestore keeps a token in a file, encrypted at rest, so that a
// restarted process uses it instead of fetching a new one.
//
//	go run ./examples/filestore
package main

import (
	"crypto/rand"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store"
)

func main() {
	idp := oauthtest.New()
	defer idp.Close()
	dir, err := os.MkdirTemp("", "tokens")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	key := make([]byte, 32) // in production: from your secret manager
	_, _ = rand.Read(key)
	tokens := store.Encrypted(store.NewFile(dir), key)

	for run := 1; run <= 3; run++ { // three "process starts"
		tr, err := oauthtransport.New(oauthtransport.ClientCredentials(idp.ClientCredentials()),
			oauthtransport.WithStore(tokens, "billing-api"))
		if err != nil {
			log.Fatal(err)
		}
		resp, err := tr.Client().Get(idp.APIURL + "invoices")
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		st := tr.Stats()
		fmt.Printf("start %d: %s; fetched %d token(s), took %d from the file\n", run, resp.Status, st.TokenFetches, st.Adopted)
		_ = tr.Close()
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		info, _ := e.Info()
		fmt.Printf("%s  %v  %d bytes\n", filepath.Join(dir, e.Name()), info.Mode().Perm(), info.Size())
	}
	fmt.Println("token endpoint calls in all:", idp.TokenCalls())
}
