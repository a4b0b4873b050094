package oauthtransport_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

// sums returns every int64 sum data point by metric name and attributes.
func sums(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	out := make(map[string]int64)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					key := m.Name
					for _, kv := range p.Attributes.ToSlice() {
						key += " " + string(kv.Key) + "=" + kv.Value.String()
					}
					out[key] += p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[m.Name+" count"] += int64(p.Count)
				}
			}
		}
	}
	return out
}

func TestOpenTelemetry(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()); _ = tp.Shutdown(context.Background()) })

	srv := oauthtest.NewServer(t)
	tr := ccTransport(t, srv, oauthtransport.WithMeterProvider(mp), oauthtransport.WithTracerProvider(tp),
		oauthtransport.WithRetry(oauthtransport.RetryPolicy{InitialBackoff: 10 * time.Millisecond}))

	ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.APIURL, nil)
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	parent.End()
	mustRotate(t, srv, tr) // an invalidation, a replay, a second fetch

	limited := newQuotaAPI(t, nil, quotaReply{status: 429}, quotaReply{status: 200}, quotaReply{status: 429, header: http.Header{"Retry-After": {"3600"}}})
	mustGet(t, tr.Client(), limited.srv.URL) // one retry after a 429
	_, err = get(t, tr.Client(), limited.srv.URL)
	require.ErrorIs(t, err, oauthtransport.ErrRateLimited) // a fail-fast

	got := sums(t, reader)
	assert.Equal(t, int64(2), got["oauthtransport.token.fetches mode=foreground outcome=ok"], "%v", got)
	assert.Equal(t, int64(2), got["oauthtransport.token.fetch.duration count"])
	assert.Equal(t, int64(1), got["oauthtransport.replays"])
	assert.Equal(t, int64(1), got["oauthtransport.invalidations"])
	assert.Equal(t, int64(1), got["oauthtransport.retries reason=429"])
	assert.Equal(t, int64(1), got["oauthtransport.ratelimit.waits"])
	assert.Equal(t, int64(1), got["oauthtransport.ratelimit.failfasts"])
	assert.GreaterOrEqual(t, got["oauthtransport.token.waits"], int64(2))
	assert.Equal(t, got["oauthtransport.token.waits"], got["oauthtransport.token.wait.duration count"])
	st := tr.Stats()
	assert.Equal(t, []int64{1, 1, 1}, []int64{st.Retries, st.RateLimitWaits, st.RateLimitFailFasts})

	var fetchSpans []sdktrace.ReadOnlySpan
	for _, s := range spans.GetSpans().Snapshots() {
		if s.Name() == "oauthtransport.token.fetch" {
			fetchSpans = append(fetchSpans, s)
		}
	}
	require.Len(t, fetchSpans, 2)
	assert.Equal(t, parent.SpanContext().TraceID(), fetchSpans[0].SpanContext().TraceID(), "in the trace of the request that waited")
	assert.Equal(t, parent.SpanContext().SpanID(), fetchSpans[0].Parent().SpanID())
	tok, _ := tr.Token(context.Background())
	for _, s := range fetchSpans {
		var fp string
		for _, kv := range s.Attributes() {
			assert.NotContains(t, kv.Value.String(), tok.AccessToken)
			if kv.Key == "oauthtransport.token" {
				fp = kv.Value.AsString()
			}
		}
		assert.True(t, strings.HasPrefix(fp, "sha256:"), "the fingerprint, never the token")
	}
}
