package grpccreds_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/grpccreds"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

// A gRPC client whose calls carry a Transport's token: the server (here a
// health service on loopback) accepts only live tokens of the
// authorization server; a token it rejects is replaced and the call sent
// once more.
func Example() {
	idp := oauthtest.New() // an authorization server on loopback
	defer idp.Close()

	addr, stop := serve(idp)
	defer stop()

	// The client. WithInsecureHTTP because this server listens on
	// loopback without TLS; in production, leave it out and dial with
	// grpc.WithTransportCredentials(credentials.NewTLS(nil)).
	tr, err := oauthtransport.New(oauthtransport.ClientCredentials(idp.ClientCredentials()), oauthtransport.WithInsecureHTTP())
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(grpccreds.PerRPCCredentials(tr)),
		grpc.WithUnaryInterceptor(grpccreds.UnaryClientInterceptor(tr)),
		grpc.WithStreamInterceptor(grpccreds.StreamClientInterceptor(tr)),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	client := healthpb.NewHealthClient(conn)
	for range 3 {
		resp, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(resp.GetStatus())
	}
	idp.RevokeAll() // the server now rejects the token: it is replaced, the call sent once more
	if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("token requests:", idp.TokenCalls())
	// Output:
	// SERVING
	// SERVING
	// SERVING
	// token requests: 2
}

// serve starts a gRPC server on loopback whose calls must carry a live
// bearer token of idp, and returns its address and how to stop it.
func serve(idp *oauthtest.Server) (addr string, stop func()) {
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		if auth := md.Get("authorization"); len(auth) != 1 || !idp.Live(strings.TrimPrefix(auth[0], "Bearer ")) {
			return nil, status.Error(codes.Unauthenticated, "invalid token")
		}
		return next(ctx, req)
	}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	return lis.Addr().String(), func() {
		srv.Stop()
		<-served
	}
}
