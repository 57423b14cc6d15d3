// Package rplumb is the Redis plumbing every package that keeps state in
// Redis shares (clientid, sessionmgr/redisstore, sessionmgr/redisreplicas,
// webhook): the key prefix, the digest that stands for user input in key
// names, the server-clock Lua, and the mapping of a failed round trip to
// the caller's errors. One copy, so that the packages cannot drift.
package rplumb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Prefix starts every key the service writes: the service and the key
// layout's version ("vs:v1:"). A layout change that old replicas cannot
// read takes a new version.
const Prefix = "vs:v1:"

// Digest is the first 128 bits of s's SHA-256, in hex: a fixed-length,
// brace-free stand-in for ARNs, request ids and other input in key names
// (never a hash-tag breaker).
func Digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// LuaNow defines now_ms(), the Redis server's clock in Unix milliseconds
// (TIME): scripts take time from the server, never from a replica, so
// replicas' clock skew does not matter.
const LuaNow = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

// Errors tells Error which of the caller's sentinels to wrap.
type Errors struct {
	// Unavailable is wrapped for an outage: the network, a timeout, a pool
	// with no free connection, a server that is loading, read-only, down,
	// out of memory or busy. Required.
	Unavailable error
	// NotFound, when set, is wrapped for redis.Nil.
	NotFound error
}

// Error maps a failed round trip of op: the caller's own ctx ending as its
// error; redis.Nil as e.NotFound (when set); an outage as e.Unavailable;
// anything else (a script or data error: a bug) as a plain error. The
// cause is kept as text only, so no go-redis type escapes.
func (e Errors) Error(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %w", op, ctxErr)
	}
	if e.NotFound != nil && errors.Is(err, redis.Nil) {
		return fmt.Errorf("%s: %w", op, e.NotFound)
	}
	if errors.Is(err, redis.ErrPoolTimeout) {
		return fmt.Errorf("%s: %w: Redis connection pool exhausted (no pooled connection came free within the pool timeout)", op, e.Unavailable)
	}
	var reply redis.Error
	if errors.As(err, &reply) && !OutageReply(err) {
		return fmt.Errorf("%s: redis: %v", op, err)
	}
	return fmt.Errorf("%s: %w: %v", op, e.Unavailable, err)
}

// OutageReply reports whether a Redis error reply means the server cannot
// serve us now, rather than that our command is wrong.
func OutageReply(err error) bool {
	return redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsClusterDownError(err) ||
		redis.IsTryAgainError(err) || redis.IsMasterDownError(err) || redis.IsMaxClientsError(err) ||
		redis.IsOOMError(err) || redis.IsNoReplicasError(err) || redis.HasErrorPrefix(err, "BUSY")
}
