package oauthtransport

// OpenTelemetry's instruments and tracer (fed by recorder.go): no-ops unless WithMeterProvider or
// WithTracerProvider were given (the global providers are never used).
// Nothing is recorded on the hot path; no token ever appears, only
// fingerprints.

import (
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

const instrumentation = "github.com/oauthtransport/oauthtransport"

// telemetry holds a Transport's instruments and tracer.
type telemetry struct {
	tracer        trace.Tracer
	fetches       metric.Int64Counter     // oauthtransport.token.fetches {outcome, mode}
	fetchTime     metric.Float64Histogram // oauthtransport.token.fetch.duration
	waits         metric.Int64Counter     // oauthtransport.token.waits
	waitTime      metric.Float64Histogram // oauthtransport.token.wait.duration
	replays       metric.Int64Counter     // oauthtransport.replays
	invalidations metric.Int64Counter     // oauthtransport.invalidations
	retries       metric.Int64Counter     // oauthtransport.retries {reason}
	limitWaits    metric.Int64Counter     // oauthtransport.ratelimit.waits
	limitFailFast metric.Int64Counter     // oauthtransport.ratelimit.failfasts
}

func newTelemetry(mp metric.MeterProvider, tp trace.TracerProvider) *telemetry {
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	m := mp.Meter(instrumentation)
	t := &telemetry{tracer: tp.Tracer(instrumentation)}
	// The SDK's instruments never fail for valid names; a provider that
	// does returns a no-op instrument with its error, which we can ignore.
	t.fetches, _ = m.Int64Counter("oauthtransport.token.fetches", metric.WithDescription("Token requests and store adoptions, by outcome and mode."))
	t.fetchTime, _ = m.Float64Histogram("oauthtransport.token.fetch.duration", metric.WithUnit("s"), metric.WithDescription("How long token requests took."))
	t.waits, _ = m.Int64Counter("oauthtransport.token.waits", metric.WithDescription("Requests and calls that waited for a token."))
	t.waitTime, _ = m.Float64Histogram("oauthtransport.token.wait.duration", metric.WithUnit("s"), metric.WithDescription("How long they waited."))
	t.replays, _ = m.Int64Counter("oauthtransport.replays", metric.WithDescription("Requests sent again with a new token after a 401."))
	t.invalidations, _ = m.Int64Counter("oauthtransport.invalidations", metric.WithDescription("Tokens dropped after a 401."))
	t.retries, _ = m.Int64Counter("oauthtransport.retries", metric.WithDescription("Retries, by reason."))
	t.limitWaits, _ = m.Int64Counter("oauthtransport.ratelimit.waits", metric.WithDescription("Retries that waited out a rate limit."))
	t.limitFailFast, _ = m.Int64Counter("oauthtransport.ratelimit.failfasts", metric.WithDescription("Rate limits not waited for: past MaxRetryAfter or the deadline."))
	return t
}
