package kvs

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// delay returns the full-jitter sleep before retry n (n >= 1): uniform in
// [0, min(Max, Base*2^(n-1))].
func (b Backoff) delay(n int) time.Duration {
	ceiling := b.Max
	if n < 1 {
		n = 1
	}
	if n-1 < 62 {
		if d := b.Base << (n - 1); d > 0 && d < ceiling && d>>(n-1) == b.Base {
			ceiling = d
		}
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling + 1)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retry calls fn until it succeeds, fails with an error retryable does not
// accept, or b.Attempts tries have been made; it sleeps b.delay between tries.
// The last error is returned.
func retry[T any](ctx context.Context, b Backoff, retryable func(error) bool, fn func() (T, error)) (T, error) {
	for n := 1; ; n++ {
		v, err := fn()
		if err == nil || n >= b.Attempts || !retryable(err) || ctx.Err() != nil {
			return v, err
		}
		if serr := sleep(ctx, b.delay(n)); serr != nil {
			return v, serr
		}
	}
}

// isThrottled is the retry rule for control-plane calls: the SDK retries
// 5xx itself but not ClientLimitExceededException.
func isThrottled(err error) bool { return errors.Is(err, ErrThrottled) }

// isTransient is the retry rule for calls without the SDK's retryer
// (GetIceServerConfig, WebSocket connects): throttling and unavailability.
func isTransient(err error) bool {
	return errors.Is(err, ErrThrottled) || errors.Is(err, ErrUnavailable)
}
