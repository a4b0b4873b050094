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
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()); _ = tp.Shutdown(context.Background()) })
	logs := &logBuffer{}

	dir, aesKey := t.TempDir(), []byte("workload-secrets-aes-key-0123456")
	s := store.Encrypted(store.NewFile(filepath.Join(dir, "store")), aesKey)
	key, err := oauthtransport.DPoPKeyFromStore(context.Background(), s, "svc")
	require.NoError(t, err)
	ec := key.(*ecdsa.PrivateKey)
	path := filepath.Join(dir, "token")
	first, second := p.clientJWT(t, srv, 4*time.Minute), p.clientJWT(t, srv, 4*time.Minute)
	writeAtomically(t, path, first)
	opts := []oauthtransport.Option{oauthtransport.WithDPoP(key), oauthtransport.WithStore(s, "svc"),
		oauthtransport.WithLogger(logs.logger()), oauthtransport.WithMeterProvider(mp), oauthtransport.WithTracerProvider(tp)}
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
	assertNoSecret(t, "the log", logs.String(), secrets...)
	assertNoSecret(t, "the spans", spanText(spans), secrets...)
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	m, _ := json.Marshal(rm)
	assertNoSecret(t, "the metrics", string(m), secrets...)
	require.Contains(t, logs.String(), "expired at", "the failures were logged")
	require.Contains(t, spanText(spans), "oauthtransport.token.fetch")
}

// spanText is every span's name, attributes, events and status.
func spanText(spans *tracetest.InMemoryExporter) string {
	var b strings.Builder
	for _, s := range spans.GetSpans().Snapshots() {
		fmt.Fprintln(&b, s.Name(), s.Attributes(), s.Events(), s.Status())
	}
	return b.String()
}
