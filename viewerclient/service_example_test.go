package viewerclient_test

import (
	"context"
	"time"

	"github.com/acme/viewersession/internal/stacktest"
	"github.com/acme/viewersession/kvsemu"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// service is what the examples run against: the whole Viewer Session
// Service, with a KVS emulator and a simulated camera, in the test process
// (internal/stacktest, on memory stores). Examples have no *testing.T, so
// its helpers panic on error, which fails the example.
type service struct {
	stack *stacktest.Stack
}

func startService() *service {
	st, err := stacktest.Open(stacktest.Options{})
	if err != nil {
		panic(err)
	}
	return &service{stack: st}
}

// addr is the service's gRPC address (plaintext, on loopback).
func (s *service) addr() string { return s.stack.GRPCAddr }

// createSession is what the app's backend does with its API key: create a
// session for viewer on the camera's channel. The app gets the session's
// name, its token and its ICE servers.
func (s *service) createSession(viewer string, opts *vspb.SessionOptions) *vspb.CreateSessionResponse {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := s.stack.API.CreateSession(stacktest.Backend(ctx), &vspb.CreateSessionRequest{
		Channel: &vspb.Channel{Arn: s.stack.ARN}, ViewerId: viewer, Options: opts,
	})
	if err != nil {
		panic(err)
	}
	return resp
}

// cameraNeverAnswers makes the simulated camera ignore every offer.
func (s *service) cameraNeverAnswers() {
	if err := s.stack.Emu.ApplyFault(kvsemu.FaultRequest{ChannelARN: s.stack.ARN, Fault: "no-answer"}); err != nil {
		panic(err)
	}
}

func (s *service) close() {
	if err := s.stack.Close(); err != nil {
		panic(err)
	}
}
