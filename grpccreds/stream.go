package grpccreds

import (
	"context"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/oauthtransport/oauthtransport"
)

// StreamClientInterceptor returns an interceptor (grpc.WithStreamInterceptor)
// that puts t's token on each stream ([oauthtransport.WithKey] in the
// stream's context names the key of a keyed Transport) and acts on the
// server's answer as [UnaryClientInterceptor] does, with one difference:
// the stream is opened again (with a new token, or after a retry's wait)
// only while the caller has sent no message on it and received none, since
// a message sent cannot be sent again. A server-streaming call sends its request at
// once, so it is never sent again; a status of Unauthenticated still
// drops its token, so that the next call gets a new one. Safe for
// concurrent use; the streams it returns are as safe as gRPC's.
func StreamClientInterceptor(t *oauthtransport.Transport) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		s := &stream{call: newCall(t, opts), ctx: attach(ctx, method)}
		s.open = func(creds *callCredentials) (grpc.ClientStream, error) {
			return streamer(s.ctx, desc, cc, method, withCredentials(opts, creds)...)
		}
		if err := s.start(); err != nil {
			return nil, err
		}
		return s, nil
	}
}

// stream is a grpc.ClientStream that can be opened again until the caller
// sends a message on it or receives one.
type stream struct {
	call *call
	ctx  context.Context
	open func(creds *callCredentials) (grpc.ClientStream, error)

	// mu guards what follows; it is held while the stream is opened
	// again, so that a message sent meanwhile goes to the new stream.
	mu     sync.Mutex
	inner  grpc.ClientStream
	creds  *callCredentials // the token of inner
	sent   bool             // the caller sent a message: no more opening again
	closed bool             // the caller called CloseSend
}

// start opens the stream, again as long as after says so. s.mu is held,
// or s is not shared yet.
func (s *stream) start() error {
	for {
		creds, err := s.call.credentials(s.ctx)
		if err != nil {
			return err
		}
		inner, err := s.open(creds)
		if err == nil {
			s.inner, s.creds = inner, creds
			if s.closed {
				return inner.CloseSend()
			}
			return nil
		}
		again, final := s.call.after(s.ctx, err, creds, true)
		if !again {
			return final
		}
	}
}

// RecvMsg receives a message; the stream's first answer, and any error,
// is reported to the Transport, which may open the stream again.
func (s *stream) RecvMsg(m any) error {
	for {
		inner, creds := s.current()
		err := inner.RecvMsg(m)
		if err == nil && s.call.answered.Load() {
			return nil
		}
		again, final := s.after(inner, creds, err)
		if !again {
			return final
		}
	}
}

// after reports the outcome of a receive on inner (sent with creds) and
// opens the stream again when that may help and nothing was sent or
// received on it yet; it returns whether it did, or the error to return.
func (s *stream) after(inner grpc.ClientStream, creds *callCredentials, err error) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	outcome := err
	if err == io.EOF { // the stream ended with status OK
		outcome = nil
	}
	fresh := !s.sent && !s.call.answered.Load() && inner == s.inner // nothing sent, nothing received
	again, final := s.call.after(s.ctx, outcome, creds, fresh)
	if !again {
		if final == nil {
			return false, err
		}
		return false, final
	}
	if err := s.start(); err != nil {
		return false, err
	}
	return true, nil
}

func (s *stream) current() (grpc.ClientStream, *callCredentials) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inner, s.creds
}

// SendMsg sends a message; from then on the stream is never opened again.
func (s *stream) SendMsg(m any) error {
	s.mu.Lock()
	s.sent = true
	inner := s.inner
	s.mu.Unlock()
	return inner.SendMsg(m)
}

// CloseSend closes the sending side, of a stream opened again too.
func (s *stream) CloseSend() error {
	s.mu.Lock()
	s.closed = true
	inner := s.inner
	s.mu.Unlock()
	return inner.CloseSend()
}

func (s *stream) Header() (metadata.MD, error) {
	inner, _ := s.current()
	return inner.Header()
}

func (s *stream) Trailer() metadata.MD {
	inner, _ := s.current()
	return inner.Trailer()
}

func (s *stream) Context() context.Context {
	inner, _ := s.current()
	return inner.Context()
}
