package service

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestPanicIsInternal: a handler that panics ends its call with INTERNAL
// and the INTERNAL ErrorInfo, like every other status; the panic's value
// goes to the log with the stack, never to the client.
func TestPanicIsInternal(t *testing.T) {
	var logs bytes.Buffer
	i := NewInterceptors(slog.New(slog.NewTextHandler(&logs, nil)), prometheus.NewRegistry())
	const secret = "panic value with a detail the client must not see"
	calls := map[string]func() error{
		"unary": func() error {
			_, err := i.recoverUnary(t.Context(), nil, &grpc.UnaryServerInfo{FullMethod: "/t/Unary"},
				func(context.Context, any) (any, error) { panic(secret) })
			return err
		},
		"stream": func() error {
			return i.recoverStream(nil, fakeStream{ctx: t.Context()}, &grpc.StreamServerInfo{FullMethod: "/t/Stream"},
				func(any, grpc.ServerStream) error { panic(errors.New(secret)) })
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			logs.Reset()
			st, ok := status.FromError(call())
			if !ok || st.Code() != codes.Internal || st.Message() != "internal error" {
				t.Fatalf("status %v, want INTERNAL \"internal error\"", st)
			}
			var reasons []string
			for _, d := range st.Details() {
				if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == Domain {
					reasons = append(reasons, info.GetReason())
				}
			}
			if len(reasons) != 1 || reasons[0] != "INTERNAL" {
				t.Errorf("ErrorInfo reasons %q, want [INTERNAL] in %s", reasons, Domain)
			}
			if strings.Contains(st.String(), secret) {
				t.Errorf("the status carries the panic's value: %v", st)
			}
			if !strings.Contains(logs.String(), "rpc panicked") || !strings.Contains(logs.String(), secret) {
				t.Errorf("log %q: want the panic logged with its value", logs.String())
			}
		})
	}
}

// fakeStream is the ServerStream of a handler that never uses it.
type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s fakeStream) Context() context.Context { return s.ctx }
