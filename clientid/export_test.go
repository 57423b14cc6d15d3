package clientid

import "context"

// UseCompatScript makes r's acquire script take its pre-Redis-7 path
// (SET NX, then GET) so tests on a Redis 7 server cover it too.
func UseCompatScript(r *Redis) { r.compat = true }

// AcquireWithToken is Acquire with a chosen owner token: calling it twice
// with one token is what a client retry after a lost reply does.
func AcquireWithToken(ctx context.Context, r *Redis, req Request, token string) (Lease, error) {
	return r.acquire(ctx, req, token)
}
