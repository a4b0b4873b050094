package grpccreds_test

// The test bed: a real grpc-go server on loopback, over TLS from a test
// CA, whose interceptors check each call's bearer token against an
// oauthtest authorization server, and a client connection that uses a
// Transport through grpccreds.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/grpccreds"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

// testTLS makes a CA, and a certificate it signs for 127.0.0.1: the
// server's TLS config and a client's that trusts the CA alone.
func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "grpccreds test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS13}
	return server, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
}

// api is the server's side: it checks every call's token with the
// authorization server and can fail calls it accepted as told.
type api struct {
	oauth     *oauthtest.Server
	rejectAll atomic.Bool
	calls     atomic.Int64 // calls received
	rejected  atomic.Int64 // of those, answered Unauthenticated

	mu      sync.Mutex
	script  []error                    // returned to the next accepted calls, one each
	byUser  map[string]map[string]bool // the x-user metadata → the tokens its calls carried
	allSeen []string
}

// authorize checks the one authorization value of a call.
func (a *api) authorize(ctx context.Context) error {
	a.calls.Add(1)
	md, _ := metadata.FromIncomingContext(ctx)
	auth := md.Get("authorization")
	if len(auth) != 1 {
		a.rejected.Add(1)
		return status.Errorf(codes.Unauthenticated, "want one authorization value, got %d", len(auth))
	}
	tok, bearer := strings.CutPrefix(auth[0], "Bearer ")
	a.record(md.Get("x-user"), tok)
	if !bearer || a.rejectAll.Load() || !a.oauth.Live(tok) {
		a.rejected.Add(1)
		return status.Error(codes.Unauthenticated, "the access token is invalid")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.script) == 0 {
		return nil
	}
	err := a.script[0]
	a.script = a.script[1:]
	return err
}

func (a *api) record(user []string, tok string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.allSeen = append(a.allSeen, tok)
	if len(user) != 1 {
		return
	}
	if a.byUser[user[0]] == nil {
		a.byUser[user[0]] = map[string]bool{}
	}
	a.byUser[user[0]][tok] = true
}

// fail makes the next accepted calls fail with errs, one each.
func (a *api) fail(errs ...error) {
	a.mu.Lock()
	a.script = append(a.script, errs...)
	a.mu.Unlock()
}

// tokens returns every token the server was sent.
func (a *api) tokens() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.allSeen)
}

func (a *api) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := a.authorize(ctx); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a *api) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := a.authorize(ss.Context()); err != nil {
		return err
	}
	return handler(srv, ss)
}

// echoDesc is a bidirectional stream written by hand (no protoc): the
// server greets first, then echoes every message.
var echoDesc = grpc.ServiceDesc{
	ServiceName: "test.Echo",
	HandlerType: (*any)(nil),
	Streams:     []grpc.StreamDesc{{StreamName: "Chat", Handler: chat, ServerStreams: true, ClientStreams: true}},
}

const chatMethod = "/test.Echo/Chat"

func chat(_ any, ss grpc.ServerStream) error {
	if err := ss.SendMsg(wrapperspb.String("hello")); err != nil {
		return err
	}
	for {
		m := new(wrapperspb.StringValue)
		if err := ss.RecvMsg(m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if err := ss.SendMsg(m); err != nil {
			return err
		}
	}
}

// bed is a gRPC server on loopback over TLS and its authorization server.
type bed struct {
	oauth     *oauthtest.Server
	api       *api
	addr      string
	clientTLS *tls.Config
}

func newBed(t testing.TB, opts ...oauthtest.Option) *bed {
	t.Helper()
	oauth := oauthtest.NewServer(t, opts...)
	a := &api{oauth: oauth, byUser: map[string]map[string]bool{}}
	serverTLS, clientTLS := testTLS(t)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(serverTLS)),
		grpc.UnaryInterceptor(a.unary), grpc.StreamInterceptor(a.stream))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	srv.RegisterService(&echoDesc, struct{}{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	return &bed{oauth: oauth, api: a, addr: lis.Addr().String(), clientTLS: clientTLS}
}

// transport returns a client-credentials Transport of b's authorization
// server, closed when t ends.
func (b *bed) transport(t testing.TB, opts ...oauthtransport.Option) *oauthtransport.Transport {
	t.Helper()
	tr, err := oauthtransport.New(oauthtransport.ClientCredentials(b.oauth.ClientCredentials()), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// dial connects to b over TLS with tr on every call: its
// PerRPCCredentials and both interceptors, unless opts say otherwise.
func (b *bed) dial(t testing.TB, tr *oauthtransport.Transport, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	if opts == nil {
		opts = []grpc.DialOption{grpc.WithPerRPCCredentials(grpccreds.PerRPCCredentials(tr)),
			grpc.WithUnaryInterceptor(grpccreds.UnaryClientInterceptor(tr)),
			grpc.WithStreamInterceptor(grpccreds.StreamClientInterceptor(tr))}
	}
	opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(b.clientTLS)))
	conn, err := grpc.NewClient(b.addr, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// check makes one health check through conn.
func check(ctx context.Context, conn *grpc.ClientConn, opts ...grpc.CallOption) error {
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, opts...)
	if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return errors.New("not serving")
	}
	return err
}
