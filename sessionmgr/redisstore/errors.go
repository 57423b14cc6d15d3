package redisstore

import (
	"context"

	"github.com/acme/viewersession/internal/rplumb"
	"github.com/acme/viewersession/sessionmgr"
)

// callError maps a failed round trip of op (rplumb.Errors): the caller's
// own ctx ending as its error; redis.Nil as sessionmgr.ErrNotFound; an
// outage (network errors, our per-call timeout, an exhausted pool, a
// server that is loading, read-only, down or busy) as
// sessionmgr.ErrUnavailable; anything else (a script or data error: a bug)
// as a plain error. The cause is kept as text only, so no go-redis type
// escapes the package.
func callError(ctx context.Context, op string, err error) error {
	return storeErrors.Error(ctx, op, err)
}

var storeErrors = rplumb.Errors{Unavailable: sessionmgr.ErrUnavailable, NotFound: sessionmgr.ErrNotFound}
