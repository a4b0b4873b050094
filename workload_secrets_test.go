package oauthtransport_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store"
)

// No assertion and no part of a DPoP private key in any error, log line,
// metric or span, through a workload's life: a file assertion rewritten,
// a DPoP key from an encrypted store, a file that vanishes, one whose
// assertion expired, refreshes and failures.
func TestWorkloadSecretsStayOutOfTelemetry(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	srv := oauthtest.NewServer(t, oauthtest.ClientKey(p.key.Public()), oauthtest.DPoP(true), oauthtest.ReusableAssertions())
	tel := newTelemetry(t)

	dir, aesKey := t.TempDir(), []byte("workload-secrets-aes-key-0123456")
	s := store.Encrypted(store.NewFile(filepath.Join(dir, "store")), aesKey)
	key, err := oauthtransport.DPoPKeyFromStore(context.Background(), s, "svc")
	require.NoError(t, err)
	ec := key.(*ecdsa.PrivateKey)
	path := filepath.Join(dir, "token")
	first, second := p.clientJWT(t, srv, 4*time.Minute), p.clientJWT(t, srv, 4*time.Minute)
	writeAtomically(t, path, first)
	opts := append([]oauthtransport.Option{oauthtransport.WithDPoP(key), oauthtransport.WithStore(s, "svc")}, tel.options()...)
	tr := newTransport(t, assertionClient(srv, oauthtransport.AssertionFromFile(path)), opts...)

	var errs []string
	mustGet(t, tr.Client(), srv.APIURL+"things")
	writeAtomically(t, path, second)
	_, err = tr.Refresh(context.Background())
	require.NoError(t, err)
	require.NoError(t, os.Remove(path))
	_, err = tr.Refresh(context.Background()) // the last good assertion
	require.NoError(t, err)
	old := time.Now().Add(-time.Hour)
	writeAtomically(t, path+"-expired", p.jwt(t, oauthtest.ClientID, oauthtest.ClientID, srv.TokenURL, old, old.Add(time.Minute)))
	for _, f := range []string{path, path + "-expired"} {
		failing := newTransport(t, assertionClient(srv, oauthtransport.AssertionFromFile(f)), append(opts[:1:1], opts[2:]...)...)
		_, err := failing.Token(context.Background())
		require.Error(t, err)
		errs = append(errs, err.Error(), fmt.Sprintf("%+v", err))
	}

	d, err := ec.Bytes() // the private scalar
	require.NoError(t, err)
	secrets := []string{first, second, base64.RawURLEncoding.EncodeToString(d), fmt.Sprintf("%x", d), string(aesKey)}
	assertNoSecret(t, "the errors", strings.Join(errs, "\n"), secrets...)
	logs, spans, metrics := tel.text(t)
	assertNoSecret(t, "the log", logs, secrets...)
	assertNoSecret(t, "the spans", spans, secrets...)
	assertNoSecret(t, "the metrics", metrics, secrets...)
	require.Contains(t, logs, "expired at", "the failures were logged")
	require.Contains(t, spans, "oauthtransport.token.fetch")
}

// telemetry is where a Transport's logs, metrics and spans go.
type telemetry struct {
	logs   *logBuffer
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
	spans  *tracetest.InMemoryExporter
	tp     *sdktrace.TracerProvider
}

func newTelemetry(t *testing.T) *telemetry {
	reader := sdkmetric.NewManualReader()
	spans := tracetest.NewInMemoryExporter()
	tel := &telemetry{logs: &logBuffer{}, reader: reader, mp: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
		spans: spans, tp: sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))}
	t.Cleanup(func() { _ = tel.mp.Shutdown(context.Background()); _ = tel.tp.Shutdown(context.Background()) })
	return tel
}

func (tel *telemetry) options() []oauthtransport.Option {
	return []oauthtransport.Option{oauthtransport.WithLogger(tel.logs.logger()),
		oauthtransport.WithMeterProvider(tel.mp), oauthtransport.WithTracerProvider(tel.tp)}
}

// text returns the log, every span's name, attributes, events and
// status, and the metrics as JSON.
func (tel *telemetry) text(t *testing.T) (logs, spans, metrics string) {
	var b strings.Builder
	for _, s := range tel.spans.GetSpans().Snapshots() {
		fmt.Fprintln(&b, s.Name(), s.Attributes(), s.Events(), s.Status())
	}
	var rm metricdata.ResourceMetrics
	require.NoError(t, tel.reader.Collect(context.Background(), &rm))
	m, _ := json.Marshal(rm)
	return tel.logs.String(), b.String(), string(m)
}
