// Package interop tests oauthtransport against authorization servers we did
// not write: ory/fosite, run in-process, and the certified Node.js
// oidc-provider, run on loopback from the npm registry. It is a module of
// its own so that their dependencies never reach the SDK's users.
//
// Its dependencies beyond the SDK's: github.com/ory/fosite (the server under
// test) and golang.org/x/crypto, whose bcrypt hashes the client secret the
// way fosite's client store expects.
package interop
