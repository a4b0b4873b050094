package oauthtransport

import "github.com/oauthtransport/oauthtransport/internal/wire"

// Problem holds the RFC 9457 problem details of an error response whose
// Content-Type is application/problem+json; see [ResponseError].Problem.
// Its fields, each the member of the same name:
//
//   - Type string: a URI reference naming the problem type.
//   - Title string: a short summary of the problem type.
//   - Status int: the HTTP status code the server gave this occurrence.
//   - Detail string: what happened this time.
//   - Instance string: a URI reference naming this occurrence.
//
// A Problem is parsed from untrusted input: a member of the wrong type is
// left empty. It is plain data; the Transport never modifies one it has
// returned.
type Problem = wire.Problem
