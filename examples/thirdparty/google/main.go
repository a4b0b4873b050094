// Command google runs a google.golang.org/api client (Tasks) over the
// Transport, in WithStatusErrors(false) mode, against a local stand-in for
// the API: a rejected token is replaced and the request replayed, a
// rateLimitExceeded is retried underneath, and a dailyLimitExceeded comes
// back to the client as its own *googleapi.Error.
//
//	go run ./examples/thirdparty/google
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	"google.golang.org/api/tasks/v1"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

func main() {
	r, err := run(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%+v\n", *r)
}

type report struct {
	Lists, Replays, Retries int64
	DailyCode               int
	DailyReason             string
}

func run(ctx context.Context) (*report, error) {
	idp := oauthtest.New()
	defer idp.Close()
	api := httptest.NewServer(standIn(idp))
	defer api.Close()

	tr, err := oauthtransport.New(oauthtransport.ClientCredentials(idp.ClientCredentials()), oauthtransport.WithStatusErrors(false),
		oauthtransport.WithRetry(oauthtransport.RetryPolicy{InitialBackoff: 10 * time.Millisecond}))
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	svc, err := tasks.NewService(ctx, option.WithHTTPClient(tr.Client()), option.WithEndpoint(api.URL+"/"))
	if err != nil {
		return nil, err
	}

	tok, err := tr.Token(ctx)
	if err != nil {
		return nil, err
	}
	idp.Revoke(tok.AccessToken) // the first call is rejected, then replayed
	lists, err := svc.Tasklists.List().Do()
	if err != nil {
		return nil, err
	}
	r := &report{Lists: int64(len(lists.Items))}
	if _, err := svc.Tasklists.List().Do(); err != nil { // a 429 first: retried
		return nil, err
	}
	_, err = svc.Tasklists.List().Do() // a daily limit: the client's own error
	var gerr *googleapi.Error
	if errors.As(err, &gerr) && len(gerr.Errors) > 0 {
		r.DailyCode, r.DailyReason = gerr.Code, gerr.Errors[0].Reason
	}
	st := tr.Stats()
	r.Replays, r.Retries = st.Replays, st.Retries
	return r, nil
}

// standIn answers as a Google API does, accepting only live tokens: the
// second accepted call gets a 429 once, the third a daily limit.
func standIn(idp *oauthtest.Server) http.Handler {
	var accepted atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if !idp.Live(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")) {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}`)
			return
		}
		switch accepted.Add(1) {
		case 2:
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":{"code":429,"message":"Rate Limit Exceeded","errors":[{"domain":"usageLimits","reason":"rateLimitExceeded"}]}}`)
		case 4:
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"error":{"code":403,"message":"Daily Limit Exceeded","errors":[{"domain":"usageLimits","reason":"dailyLimitExceeded","message":"Daily Limit Exceeded"}]}}`)
		default:
			fmt.Fprint(w, `{"kind":"tasks#taskLists","items":[{"id":"1","title":"Groceries"},{"id":"2","title":"Work"}]}`)
		}
	})
}
