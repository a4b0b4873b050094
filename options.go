package oauthtransport

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

// An Option configures a [Transport]. Options are applied in order by [New],
// which validates them together; an Option never does I/O.
type Option func(*options)

// Defaults.
const (
	// DefaultExpirySkew is how long before its expiry a token stops being
	// used, unless [WithExpirySkew] says otherwise. It never exceeds a tenth
	// of the token's lifetime.
	DefaultExpirySkew = 10 * time.Second
	// DefaultMaxRefreshWindow caps the default refresh window, a quarter of
	// the token's lifetime.
	DefaultMaxRefreshWindow = 5 * time.Minute
	// DefaultStoreKey is the key under which a Transport keeps its token when
	// [WithStore] is not used.
	DefaultStoreKey = "default"

	defaultRefreshTimeout = 30 * time.Second
)

type options struct {
	base          http.RoundTripper
	store         store.Store
	key           string
	window        time.Duration
	windowSet     bool
	skew          time.Duration
	retry         RetryPolicy
	allowedHosts  []hostPattern // nil: every host
	insecureHTTP  bool
	statusErrors  bool
	logger        *slog.Logger
	authorization func(*oauth2.Token) string
	tokenChange   func(key string, tok *oauth2.Token)
	tokenClient   *http.Client
	maxTokens     int
	maxTokensSet  bool
	keepAlive     keepAlivePolicy // off unless idle > 0
	dpop          *dpop           // WithDPoP
	boundCert     func() string   // WithBoundCertificate
	metadata      *ServerMetadata // WithServerMetadata
	meters        metric.MeterProvider
	tracers       trace.TracerProvider
	// refreshTimeout bounds one refresh (lock, store and token endpoint).
	refreshTimeout time.Duration
	errs           []error
}

func defaultOptions() options {
	return options{
		base:           http.DefaultTransport,
		key:            DefaultStoreKey,
		skew:           DefaultExpirySkew,
		statusErrors:   true,
		maxTokens:      DefaultMaxTokens,
		refreshTimeout: defaultRefreshTimeout,
	}
}

// WithBase sets the RoundTripper that sends the requests; the default is
// [http.DefaultTransport]. The Transport never closes the base's idle
// connections. As the [http.RoundTripper] contract says, rt must not
// modify the requests it is given: requests that carry no header of their
// own share one read-only header holding the token.
func WithBase(rt http.RoundTripper) Option {
	return func(o *options) {
		if rt == nil {
			o.errs = append(o.errs, errors.New("WithBase: nil RoundTripper"))
			return
		}
		o.base = rt
	}
}

// WithStore keeps the token in s under key, instead of in an in-memory store
// private to the Transport. The Transport loads the token from s on first
// use, saves every token it obtains (rotated refresh tokens included), and,
// when s is also a [store.Locker], holds its lock while refreshing, so
// processes sharing s refresh one at a time and adopt each other's tokens.
func WithStore(s store.Store, key string) Option {
	return func(o *options) {
		if s == nil {
			o.errs = append(o.errs, errors.New("WithStore: nil store"))
		}
		if key == "" {
			o.errs = append(o.errs, errors.New("WithStore: empty key"))
		}
		if c, ok := s.(store.Checker); ok {
			if err := c.Check(); err != nil {
				o.errs = append(o.errs, fmt.Errorf("WithStore: %w", err))
			}
		}
		o.store, o.key = s, key
	}
}

// WithRefreshWindow starts a background refresh once less than d of a
// token's lifetime remains. Requests keep using the current token meanwhile.
// The default is a quarter of the token's lifetime, at most 5 minutes; the
// window never exceeds half the lifetime, and a little jitter is added so a
// fleet does not refresh in lock-step. Zero turns background refresh off:
// tokens are then refreshed only once they expire, while callers wait.
// Background refreshes are driven by traffic: an idle Transport fetches
// nothing.
func WithRefreshWindow(d time.Duration) Option {
	return func(o *options) {
		if d < 0 {
			o.errs = append(o.errs, fmt.Errorf("WithRefreshWindow: negative window %v", d))
		}
		o.window, o.windowSet = d, true
	}
}

// WithExpirySkew treats a token as expired once less than d of its lifetime
// remains, so that it does not expire in flight. The default is 10s. The
// skew never exceeds a tenth of the token's lifetime, so a short-lived token
// is still used.
func WithExpirySkew(d time.Duration) Option {
	return func(o *options) {
		if d < 0 {
			o.errs = append(o.errs, fmt.Errorf("WithExpirySkew: negative skew %v", d))
		}
		o.skew = d
	}
}

// WithRetry sets how failed requests are retried; see [RetryPolicy] for the
// defaults that its zero fields stand for.
func WithRetry(p RetryPolicy) Option {
	return func(o *options) {
		if err := p.validate(); err != nil {
			o.errs = append(o.errs, err)
		}
		o.retry = p
	}
}

// WithAllowedHosts attaches tokens only to requests for these hosts. An entry
// is "host", matching any port, or "host:port" (IPv6 as "[::1]:8080"),
// matching exactly; case is ignored. A request for any other host goes to the
// base RoundTripper untouched: nothing added, nothing removed, no status
// error. This makes the Transport safe as http.DefaultClient's transport.
// By default every host gets the token.
func WithAllowedHosts(hosts ...string) Option {
	return func(o *options) {
		for _, h := range hosts {
			p, err := parseHostPattern(h)
			if err != nil {
				o.errs = append(o.errs, err)
				continue
			}
			o.allowedHosts = append(o.allowedHosts, p)
		}
		if len(hosts) == 0 {
			o.errs = append(o.errs, errors.New("WithAllowedHosts: no hosts"))
		}
	}
}

// WithInsecureHTTP allows tokens over plain http to hosts that are not
// loopback. Without it such a request fails with [ErrInsecureTransport] and
// nothing is sent. Loopback (localhost, 127.0.0.0/8, ::1) is always allowed.
func WithInsecureHTTP() Option {
	return func(o *options) { o.insecureHTTP = true }
}

// WithStatusErrors controls whether final responses with an error status
// (401, 403, 420, 429, 5xx) become typed errors. The default, true, departs
// from the [http.RoundTripper] contract on purpose: RoundTrip returns a nil
// response and an error such as *[ForbiddenError]. With false every final
// response is returned with a nil error and its body unread; retries and the
// replay after a 401 still happen. See [ErrorFromResponse].
func WithStatusErrors(on bool) Option {
	return func(o *options) { o.statusErrors = on }
}

// WithLogger sends debug events (token fetched, refreshed, failed,
// invalidated, request replayed) to l. Tokens appear only as fingerprints.
// The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l == nil {
			o.errs = append(o.errs, errors.New("WithLogger: nil logger"))
			return
		}
		o.logger = l
	}
}

// WithAuthorization sets how the Authorization header is built from a token.
// The default is "<type> <access token>", with the type "Bearer" when the
// server sent none. f is called once per token, not per request; the
// first word of its result is the scheme that is compared with a 401's
// challenges.
func WithAuthorization(f func(tok *oauth2.Token) string) Option {
	return func(o *options) {
		if f == nil {
			o.errs = append(o.errs, errors.New("WithAuthorization: nil function"))
			return
		}
		o.authorization = f
	}
}

// WithRefreshTimeout bounds one refresh: the store's lock, the store and
// the token endpoint. A caller waiting for a token leaves at its own
// context's end or after d, whichever comes first; a refresh that
// outlives d is abandoned and the next caller starts another (unless the
// stuck one may be presenting a refresh token, which must not be spent
// twice). The store's lock lives d plus at most 5 s. The default is 30s.
func WithRefreshTimeout(d time.Duration) Option {
	return func(o *options) {
		if d <= 0 {
			o.errs = append(o.errs, fmt.Errorf("WithRefreshTimeout: %v is not positive", d))
		}
		o.refreshTimeout = d
	}
}

// WithTokenChange calls f after every new token the Transport installs,
// fetched or adopted from the store, with the store key (DefaultStoreKey
// without WithStore) and a copy of the token: a place to persist tokens
// elsewhere, or to watch rotations. Calls for one key never overlap; f runs
// on the refresh path, so keep it short. A panic in f is logged at error
// level; the token stays in use.
func WithTokenChange(f func(key string, tok *oauth2.Token)) Option {
	return func(o *options) {
		if f == nil {
			o.errs = append(o.errs, errors.New("WithTokenChange: nil function"))
			return
		}
		o.tokenChange = f
	}
}

// WithTokenClient sets the *http.Client of every token request the
// built-in sources make, for a proxy, a private CA or a client certificate
// (mTLS). A SourceFunc reaches it through [TokenClient] (and x/oauth2
// configs called with the Source's context use it). The Transport keeps its
// guards around it: no redirect to another origin, and no plain http to a
// host that is not loopback unless [WithInsecureHTTP]. The default is a
// client over http.DefaultTransport.
func WithTokenClient(c *http.Client) Option {
	return func(o *options) {
		if c == nil {
			o.errs = append(o.errs, errors.New("WithTokenClient: nil client"))
			return
		}
		o.tokenClient = c
	}
}

// WithMeterProvider records metrics through mp, all named oauthtransport.*:
// token fetches by outcome (ok, error, adopted) and mode (foreground,
// background) and their duration; requests that waited for a token and for
// how long; 401 replays; invalidations; retries by reason (the status, or
// "network"); rate-limit waits and fail-fasts. Without it nothing is
// recorded; the global provider is never used. No attribute holds a token.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) {
		if mp == nil {
			o.errs = append(o.errs, errors.New("WithMeterProvider: nil provider"))
			return
		}
		o.meters = mp
	}
}

// WithTracerProvider records a span per token fetch through tp
// ("oauthtransport.token.fetch", with its mode, outcome and the new
// token's fingerprint), a child of the request that asked for the token.
// Without it nothing is recorded; the global provider is never used.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) {
		if tp == nil {
			o.errs = append(o.errs, errors.New("WithTracerProvider: nil provider"))
			return
		}
		o.tracers = tp
	}
}

func (o *options) validate() error {
	errs := o.errs
	if err := o.checkMetadata(); err != nil {
		errs = append(errs[:len(errs):len(errs)], err)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("oauthtransport: invalid options: %w", errors.Join(errs...))
}

// hostPattern is one WithAllowedHosts entry.
type hostPattern struct {
	host string // lower case, without brackets
	port string // empty: any port
}

func parseHostPattern(s string) (hostPattern, error) {
	bad := func(why string) (hostPattern, error) {
		return hostPattern{}, fmt.Errorf("WithAllowedHosts: %q: %s", s, why)
	}
	if s == "" {
		return bad("empty host")
	}
	if strings.ContainsAny(s, "/@?# ") {
		return bad(`want "host" or "host:port", not a URL`)
	}
	if h, p, err := net.SplitHostPort(s); err == nil {
		if h == "" || p == "" {
			return bad("empty host or port")
		}
		return hostPattern{host: strings.ToLower(h), port: p}, nil
	}
	if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") { // bare IPv6
		return hostPattern{host: strings.ToLower(s)}, nil
	}
	if strings.ContainsAny(s, ":[]") {
		return bad("malformed host:port")
	}
	return hostPattern{host: strings.ToLower(s)}, nil
}
