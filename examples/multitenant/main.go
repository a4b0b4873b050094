// Command multitenant calls an API on behalf of many users from one keyed
// Transport, with every user's token kept in SQLite: one request per user,
// then one user withdraws consent (ErrReauthRequired for that user only)
// and authorizes again.
//
//	go run ./examples/multitenant
//
// It is a module of its own, so that the SDK's users never download the
// SQLite driver; in your program, open PostgreSQL the same way with pgx's
// stdlib ("pgx" and a postgres:// URL).
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/oauth2"
	_ "modernc.org/sqlite"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store/sqlstore"
)

const users = 500

func main() {
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(out io.Writer) error {
	idp := oauthtest.New() // an authorization server and an API, on loopback
	defer idp.Close()
	dir, err := os.MkdirTemp("", "multitenant")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "tokens.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		return err
	}
	defer db.Close()
	tokens, err := sqlstore.New(db) // creates its tables
	if err != nil {
		return err
	}

	// What the app learned when each user connected their account.
	consent := make(map[string]string, users)
	for i := range users {
		consent[fmt.Sprintf("user-%d", i)] = idp.IssueRefreshToken()
	}
	tr, err := oauthtransport.NewKeyed(func(user string) (oauthtransport.Source, error) {
		rt, ok := consent[user]
		if !ok {
			return nil, fmt.Errorf("user %s never connected", user)
		}
		return oauthtransport.RefreshToken(idp.OAuth2Config(), &oauth2.Token{RefreshToken: rt}), nil
	}, oauthtransport.WithStore(tokens, "calendar"), oauthtransport.WithMaxTokens(100))
	if err != nil {
		return err
	}
	defer tr.Close()
	client := tr.Client()

	ok := callEveryone(client, idp.APIURL+"events")
	fmt.Fprintf(out, "%d users: %d requests answered 200; token endpoint calls: %d\n", users, ok, idp.TokenCalls())
	var rows int
	if err := db.QueryRow("SELECT COUNT(*) FROM " + sqlstore.DefaultTable).Scan(&rows); err != nil {
		return err
	}
	fmt.Fprintf(out, "rows in %s: %d\n", sqlstore.DefaultTable, rows)

	// user-7 withdraws consent at the IdP.
	withdraw(idp, "user-7", tr)
	fmt.Fprintln(out, "user-7:", describe(get(client, "user-7", idp.APIURL+"events")))
	fmt.Fprintln(out, "user-8:", describe(get(client, "user-8", idp.APIURL+"events")))

	// user-7 authorizes again; the app hands the new token to the Transport.
	again, err := idp.OAuth2Config().TokenSource(context.Background(), &oauth2.Token{RefreshToken: idp.IssueRefreshToken()}).Token()
	if err != nil {
		return err
	}
	if err := tr.SetToken(oauthtransport.WithKey(context.Background(), "user-7"), again); err != nil {
		return err
	}
	fmt.Fprintln(out, "user-7 after authorizing again:", describe(get(client, "user-7", idp.APIURL+"events")))
	return nil
}

// callEveryone sends one request per user, 16 at a time.
func callEveryone(client *http.Client, url string) int {
	var mu sync.Mutex
	ok := 0
	work := make(chan string)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for user := range work {
				if get(client, user, url) == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}
		})
	}
	for i := range users {
		work <- fmt.Sprintf("user-%d", i)
	}
	close(work)
	wg.Wait()
	return ok
}

// get calls url as user: WithKey picks the user's token.
func get(client *http.Client, user, url string) error {
	ctx := oauthtransport.WithKey(context.Background(), user)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil // the Transport turned any status >= 400 into an error
}

func describe(err error) string {
	switch {
	case err == nil:
		return "200 OK"
	case errors.Is(err, oauthtransport.ErrReauthRequired):
		return "ErrReauthRequired: ask the user to connect their account again"
	}
	return err.Error()
}

// withdraw revokes the user's grant at the IdP (RFC 7009), as a user
// removing the app from their account does.
func withdraw(idp *oauthtest.Server, user string, tr *oauthtransport.Transport) {
	tok, err := tr.Token(oauthtransport.WithKey(context.Background(), user))
	if err != nil {
		log.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, idp.RevokeURL, strings.NewReader(url.Values{"token": {tok.RefreshToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(oauthtest.ClientID, oauthtest.ClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
}
