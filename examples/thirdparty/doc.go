// Package thirdparty holds examples of the Transport under third-party and
// generated API clients (go-github, google.golang.org/api, an oapi-codegen
// client), each in WithStatusErrors(false) mode against a local stand-in
// for the API. It is a module of its own, so that the SDK's users never
// download these clients.
package thirdparty
