package oauthtransport

// OpenTelemetry: metrics and spans, no-ops unless WithMeterProvider or
// WithTracerProvider were given (the global providers are never used).
// Nothing is recorded on the hot path; no token ever appears, only
// fingerprints.

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
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

// fetchSpan starts the span of one token fetch, a child of the request
// that asked for it (parent, from the request's context).
func (t *telemetry) fetchSpan(ctx context.Context, parent trace.SpanContext, background bool) (context.Context, trace.Span) {
	if parent.IsValid() {
		ctx = trace.ContextWithSpanContext(ctx, parent)
	}
	return t.tracer.Start(ctx, "oauthtransport.token.fetch", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("oauthtransport.mode", mode(background))))
}

// endFetch records a fetch's outcome on its span and in the metrics.
func (t *telemetry) endFetch(ctx context.Context, span trace.Span, start time.Time, outcome, fp string, background bool) {
	attrs := metric.WithAttributes(attribute.String("outcome", outcome), attribute.String("mode", mode(background)))
	t.fetches.Add(ctx, 1, attrs)
	if outcome != "adopted" {
		t.fetchTime.Record(ctx, time.Since(start).Seconds(), attrs)
	}
	span.SetAttributes(attribute.String("oauthtransport.outcome", outcome))
	if fp != "" {
		span.SetAttributes(attribute.String("oauthtransport.token", fp))
	}
	if outcome == "error" {
		span.SetStatus(codes.Error, "no token")
	}
	span.End()
}

func mode(background bool) string {
	if background {
		return "background"
	}
	return "foreground"
}

// countRetry counts a retry, by reason, and a rate-limit wait.
func (t *Transport) countRetry(ctx context.Context, resp *http.Response, v verdict) {
	reason := "network"
	if resp != nil {
		reason = strconv.Itoa(resp.StatusCode)
	}
	t.stats.retries.Add(1)
	tel := t.env.tel
	tel.retries.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reason)))
	if v.kind == kindRateLimit {
		t.stats.limitWaits.Add(1)
		tel.limitWaits.Add(ctx, 1)
	}
}

// countFailFast counts a rate limit that was not waited for.
func (t *Transport) countFailFast(ctx context.Context, v verdict, why stopReason) {
	if v.kind == kindRateLimit && (why == stopHint || why == stopDeadline) {
		t.stats.limitFailFasts.Add(1)
		t.env.tel.limitFailFast.Add(ctx, 1)
	}
}
