package rplumb_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/acme/viewersession/internal/rplumb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	errDown    = errors.New("down")
	errMissing = errors.New("missing")
)

// replyErr is a Redis error reply, as go-redis hands them out.
type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}

func TestError(t *testing.T) {
	e := rplumb.Errors{Unavailable: errDown, NotFound: errMissing}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want error // nil: a plain error, neither sentinel
	}{
		{"the caller's context ended", done, io.EOF, context.Canceled},
		{"nil reply", context.Background(), redis.Nil, errMissing},
		{"pool exhausted", context.Background(), redis.ErrPoolTimeout, errDown},
		{"network", context.Background(), io.ErrUnexpectedEOF, errDown},
		{"loading", context.Background(), replyErr("LOADING Redis is loading the dataset in memory"), errDown},
		{"busy", context.Background(), replyErr("BUSY Redis is busy running a script"), errDown},
		{"script bug", context.Background(), replyErr("ERR Error running script"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.Error(tt.ctx, "op", tt.err)
			if !strings.HasPrefix(got.Error(), "op: ") {
				t.Errorf("Error = %q, want it to start with the op", got)
			}
			switch {
			case tt.want == nil && (errors.Is(got, errDown) || errors.Is(got, errMissing)):
				t.Errorf("Error(%v) = %v, want a plain error", tt.err, got)
			case tt.want != nil && !errors.Is(got, tt.want):
				t.Errorf("Error(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
	if got := (rplumb.Errors{Unavailable: errDown}).Error(context.Background(), "op", redis.Nil); errors.Is(got, errMissing) {
		t.Errorf("without NotFound, redis.Nil = %v", got)
	}
}

func TestDigest(t *testing.T) {
	d := rplumb.Digest("arn:aws:kinesisvideo:us-west-2:1:channel/x/1")
	if len(d) != 32 || strings.ContainsAny(d, "{}") {
		t.Errorf("Digest = %q, want 32 hex digits", d)
	}
	if d == rplumb.Digest("another") {
		t.Errorf("two inputs, one digest")
	}
}
