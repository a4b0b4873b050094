package oauthtransport

import "sync/atomic"

// Stats counts what a [Transport]'s refresher did since [New]. The hot path
// counts nothing, so Stats costs requests nothing.
type Stats struct {
	TokenFetches        int64 // tokens obtained from the Source
	BackgroundRefreshes int64 // of those, fetched in the background while the old token was in use
	Adopted             int64 // tokens taken from the store instead of fetched
	FetchFailures       int64 // refreshes that failed
	Invalidations       int64 // tokens dropped after a 401 (or a Credential.Rejected)
	Replays             int64 // requests sent again with a new token after a 401, and Credential.Rejected calls that allowed it
	Waits               int64 // requests and Token or Credential calls that had to wait for a token
	Retries             int64 // requests sent again after a retryable failure, and retries Transport.Retry allowed
	RateLimitWaits      int64 // of those, after a rate limit (for Transport.Retry: a failure with a server hint)
	RateLimitFailFasts  int64 // rate limits not waited for: past MaxRetryAfter or the deadline
}

// stats are the counters behind Stats, fed by the recorder.
type stats struct {
	fetches, background, adopted, failures, invalidations, replays, waits atomic.Int64
	retries, limitWaits, limitFailFasts                                   atomic.Int64
}
