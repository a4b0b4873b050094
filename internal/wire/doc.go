// Package wire holds the parsers of what servers send: WWW-Authenticate
// challenges, Retry-After and the rate-limit headers, problem details and
// the usual JSON error shapes, OAuth error bodies, JWT expiry; the peek at
// a response body that classifying it needs; and the redaction of what
// reaches errors and logs.
//
// Each parser reads untrusted input and has a fuzz target in the test file
// beside it (seeds in testdata/fuzz): none panics, every result is
// bounded, and garbage yields "nothing". No text that has passed through
// [Redact] and [ScrubURLs] holds a secret or a URL's user info, query or
// fragment. The package imports nothing of the SDK; the root package
// re-exports the two types it defines, [Challenge] and [Problem].
package wire
