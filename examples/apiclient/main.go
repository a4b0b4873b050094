// Command apiclient shows an API client that embeds a Transport: the client
// owns the Transport, exposes typed methods, and turns the Transport's typed
// errors into answers for its callers.
//
//	go run ./examples/apiclient
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

// Client is a client of the orders API.
type Client struct {
	base string
	tr   *oauthtransport.Transport
	http *http.Client
}

// NewClient returns a Client that authenticates with client credentials.
func NewClient(base string, cfg *clientcredentials.Config) (*Client, error) {
	tr, err := oauthtransport.New(oauthtransport.ClientCredentials(cfg))
	if err != nil {
		return nil, err
	}
	return &Client{base: base, tr: tr, http: tr.Client()}, nil
}

// Close stops the client's background token refresh.
func (c *Client) Close() error { return c.tr.Close() }

// Order fetches one order.
func (c *Client) Order(ctx context.Context, id string) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"orders/"+id, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var fe *oauthtransport.ForbiddenError
		if errors.As(err, &fe) && fe.Scope != "" {
			return nil, fmt.Errorf("orders: reading order %s needs scope %q: %w", id, fe.Scope, err)
		}
		return nil, fmt.Errorf("orders: reading order %s: %w", id, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

func main() {
	idp := oauthtest.New()
	defer idp.Close()

	c, err := NewClient(idp.APIURL, idp.ClientCredentials())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	order, err := c.Order(context.Background(), "42")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("order 42:", order)
}
