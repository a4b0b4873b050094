package oauthtransport

// The recorder: every event the Transport counts goes to Stats and to
// OpenTelemetry through one method here, so the two never disagree.
// Nothing is recorded on the hot path.

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// recorder feeds a Transport's Stats and its instruments.
type recorder struct {
	stats stats
	tel   *telemetry
}

// refresh outcomes, as metrics and spans name them.
const (
	outcomeFetched = "ok"      // a token from the Source
	outcomeAdopted = "adopted" // a token from the store
	outcomeCurrent = "current" // the token held was still good
	outcomeLogin   = "login"   // a token a person authorized
	outcomeError   = "error"
)

// startRefresh starts the span of one refresh, a child of the request that
// asked for it (parent).
func (r *recorder) startRefresh(ctx context.Context, parent trace.SpanContext, background bool) (context.Context, trace.Span) {
	if parent.IsValid() {
		ctx = trace.ContextWithSpanContext(ctx, parent)
	}
	return r.tel.tracer.Start(ctx, "oauthtransport.token.fetch", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("oauthtransport.mode", mode(background))))
}

// refreshEnded records a refresh's outcome: in Stats, in the metrics, and
// on its span (which it ends); fp is the new token's fingerprint.
func (r *recorder) refreshEnded(ctx context.Context, span trace.Span, start time.Time, outcome, fp string, background bool) {
	switch outcome {
	case outcomeFetched, outcomeLogin:
		r.stats.fetches.Add(1)
		if background {
			r.stats.background.Add(1)
		}
	case outcomeAdopted:
		r.stats.adopted.Add(1)
	case outcomeError:
		r.stats.failures.Add(1)
	}
	attrs := metric.WithAttributes(attribute.String("outcome", outcome), attribute.String("mode", mode(background)))
	r.tel.fetches.Add(ctx, 1, attrs)
	if outcome != outcomeAdopted {
		r.tel.fetchTime.Record(ctx, time.Since(start).Seconds(), attrs)
	}
	span.SetAttributes(attribute.String("oauthtransport.outcome", outcome))
	if fp != "" {
		span.SetAttributes(attribute.String("oauthtransport.token", fp))
	}
	if outcome == outcomeError {
		span.SetStatus(codes.Error, "no token")
	}
	span.End()
}

// adopted records a token taken from the store outside a refresh (a grant
// set again by a peer).
func (r *recorder) adopted(ctx context.Context) {
	r.stats.adopted.Add(1)
	r.tel.fetches.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", outcomeAdopted), attribute.String("mode", mode(false))))
}

// waited records a request or call that waited d for a token.
func (r *recorder) waited(ctx context.Context, d time.Duration) {
	r.stats.waits.Add(1)
	r.tel.waits.Add(ctx, 1)
	r.tel.waitTime.Record(ctx, d.Seconds())
}

// invalidated records a token dropped after a 401.
func (r *recorder) invalidated(ctx context.Context) {
	r.stats.invalidations.Add(1)
	r.tel.invalidations.Add(ctx, 1)
}

// replayed records a request sent again after a 401.
func (r *recorder) replayed(ctx context.Context) {
	r.stats.replays.Add(1)
	r.tel.replays.Add(ctx, 1)
}

// retried records a retry, by reason (the status, "network", or
// "integration" for Transport.Retry), and a rate-limit wait.
func (r *recorder) retried(ctx context.Context, reason string, v verdict) {
	r.stats.retries.Add(1)
	r.tel.retries.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reason)))
	if v.kind == kindRateLimit {
		r.stats.limitWaits.Add(1)
		r.tel.limitWaits.Add(ctx, 1)
	}
}

// retryReason is the reason an HTTP retry is recorded under: the status,
// or "network" when no response came back.
func retryReason(resp *http.Response) string {
	if resp == nil {
		return "network"
	}
	return strconv.Itoa(resp.StatusCode)
}

// gaveUp records a rate limit that was not waited for.
func (r *recorder) gaveUp(ctx context.Context, v verdict, why stopReason) {
	if v.kind == kindRateLimit && (why == stopHint || why == stopDeadline) {
		r.stats.limitFailFasts.Add(1)
		r.tel.limitFailFast.Add(ctx, 1)
	}
}

func mode(background bool) string {
	if background {
		return "background"
	}
	return "foreground"
}
