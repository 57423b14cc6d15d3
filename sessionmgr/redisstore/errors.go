package redisstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/sessionmgr"
)

// callError maps a failed round trip of op: the caller's own ctx ending as
// its error; redis.Nil as sessionmgr.ErrNotFound; an outage (network
// errors, our per-call timeout, a server that is loading, read-only, down
// or busy) as sessionmgr.ErrUnavailable; anything else (a script or data
// error: a bug) as a plain error. The cause is kept as text only, so no
// go-redis type escapes the package.
func callError(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %w", op, ctxErr)
	}
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("%s: %w", op, sessionmgr.ErrNotFound)
	}
	if errors.Is(err, redis.ErrPoolTimeout) {
		return fmt.Errorf("%s: %w: Redis connection pool exhausted (no pooled connection came free within the pool timeout)", op, sessionmgr.ErrUnavailable)
	}
	var reply redis.Error
	if errors.As(err, &reply) && !outageReply(err) {
		return fmt.Errorf("%s: redis: %v", op, err)
	}
	return fmt.Errorf("%s: %w: %v", op, sessionmgr.ErrUnavailable, err)
}

// outageReply reports whether a Redis error reply means the server cannot
// serve us now, rather than that our command is wrong.
func outageReply(err error) bool {
	return redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsClusterDownError(err) ||
		redis.IsTryAgainError(err) || redis.IsMasterDownError(err) || redis.IsMaxClientsError(err) ||
		redis.IsOOMError(err) || redis.IsNoReplicasError(err) || redis.HasErrorPrefix(err, "BUSY")
}
