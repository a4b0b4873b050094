// Package interop tests oauthtransport against authorization servers we did
// not write: ory/fosite, run in-process, the certified Node.js
// oidc-provider, run on loopback from the npm registry, and Ory Hydra
// v2.3.0, built from its own module (hydra/tools) and run on loopback, for
// the grants a person authorizes and ProtectedResource. It is a module of its own so that their
// dependencies never reach the SDK's users.
//
// Its dependencies beyond the SDK's: github.com/ory/fosite (the server under
// test), golang.org/x/crypto, whose bcrypt hashes the client secret the
// way fosite's client store expects, and golang.org/x/net/html, with which
// the headless person reads the servers' login and consent pages. Hydra is
// a tool of hydra/tools only.
package interop
