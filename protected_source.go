package oauthtransport

import (
	"context"
	"errors"

	"golang.org/x/oauth2"
)

type protectedResource struct {
	resource string
	client   ClientConfig
	o        sourceOptions
}

func newProtectedResource(resourceURL string, client *ClientConfig, opts []SourceOption) *protectedResource {
	p := &protectedResource{resource: resourceURL, o: applySourceOptions(opts)}
	if client != nil {
		p.client = *client
	}
	return p
}

func (p *protectedResource) Token(ctx context.Context, current *oauth2.Token) (*oauth2.Token, error) {
	return nil, &TokenError{Err: errors.New("ProtectedResource: not yet")}
}

func (p *protectedResource) FollowChallenge(c *ResourceChallenge) bool { return false }
