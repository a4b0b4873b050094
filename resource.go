package oauthtransport

// Resource indicators (RFC 8707): tokens asked for particular resources,
// and kept apart from tokens for others.

import (
	"fmt"
	"net/url"

	"github.com/oauthtransport/oauthtransport/internal/wire"
)

// WithResource asks the token endpoint for a token for the resources
// named by uris (RFC 8707 resource indicators: absolute URIs without a
// fragment), on every token request the source makes. A Transport keeps
// such tokens under its store key and "#resource:" and a hash of the
// resources, so that Transports (or processes) asking for other resources
// never adopt them, even when they share a store and a WithStore key.
func WithResource(uris ...string) SourceOption {
	return func(o *sourceOptions) {
		for _, u := range uris {
			p, err := url.Parse(u)
			if err != nil || !p.IsAbs() || p.Fragment != "" {
				o.errs = append(o.errs, fmt.Errorf("WithResource: %q is not an absolute URI without a fragment", wire.OneLine(wire.ScrubURLs(u), 200)))
				continue
			}
			o.resources = append(o.resources, u)
		}
	}
}

// storeScope is what a source adds to its Transport's store key: the
// resources its tokens are for (see storekey.go).
func (o sourceOptions) storeScope() string { return resourceScope(o.resources) }

func (s *clientCredentials) storeScope() string  { return s.o.storeScope() }
func (s *refreshTokenSource) storeScope() string { return s.o.storeScope() }
func (s *tokenExchange) storeScope() string      { return s.o.storeScope() }
func (s *jwtBearer) storeScope() string          { return s.o.storeScope() }
func (g *personGrant) storeScope() string        { return g.o.storeScope() }
