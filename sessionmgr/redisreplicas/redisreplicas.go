// Package redisreplicas is the replica set on Redis (sessionmgr.Cluster; it
// works on standalone, Sentinel and Cluster Redis alike):
// replica heartbeats and requests forwarded to a session's owner.
//
// Keys (each command touches one key, so nothing crosses a hash slot on
// Redis Cluster):
//
//	vs:v1:{replica:<id>}:alive   "1" with a TTL: the replica's heartbeat
//	vs:v1:{replica:<id>}:inbox   list of forwarded requests (JSON, versioned:
//	                             see message.go), newest left
//	vs:v1:{reply:<random>}       list holding the one reply to a request
//	vs:v1:{pace:<h(channel)>}    the next time a signaling connect may start
//	vs:v1:{rate:<h(key)>}        a token bucket (Take): tokens left, when counted
//
// A forwarder LPUSHes its request (with a deadline and the reply key) onto
// the owner's inbox and BLPOPs the reply key; the owner BRPOPs its inbox,
// drops requests past their deadline, and LPUSHes the reply, which expires
// if nobody takes it.
package redisreplicas

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/internal/rplumb"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/internal/wire"
)

// Cluster implements sessionmgr.Cluster on a go-redis UniversalClient
// (standalone, Sentinel or Cluster). Safe for concurrent use.
type Cluster struct {
	rdb    redis.UniversalClient
	prefix string
	// MaxInFlight bounds the forwarded requests a replica handles at once.
	maxInFlight int
	// version is the wire version of the messages it writes.
	version int
}

var _ sessionmgr.Cluster = (*Cluster)(nil)

// New returns a Cluster on rdb with the key prefix "vs:v1".
func New(rdb redis.UniversalClient, opts ...Option) *Cluster {
	c := &Cluster{rdb: rdb, prefix: strings.TrimSuffix(rplumb.Prefix, ":"), maxInFlight: 64, version: wire.Version}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Option configures a Cluster.
type Option func(*Cluster)

// WithWriteVersion sets the wire version of the messages the Cluster
// forwards and answers: 2 (the default, wire.Version) or 1, what replicas
// before version 2 write and read. It reads both either way. Write 1 while
// such replicas still run, then 2. Any other value is 2.
func WithWriteVersion(v int) Option {
	return func(c *Cluster) {
		c.version = wire.Version
		if v == 1 {
			c.version = 1
		}
	}
}

func (c *Cluster) aliveKey(replica string) string {
	return c.prefix + ":{replica:" + replica + "}:alive"
}
func (c *Cluster) inboxKey(replica string) string {
	return c.prefix + ":{replica:" + replica + "}:inbox"
}

// Heartbeat implements sessionmgr.Cluster.
func (c *Cluster) Heartbeat(ctx context.Context, replica string, ttl time.Duration) error {
	return wrap(c.rdb.Set(ctx, c.aliveKey(replica), "1", ttl).Err())
}

// Alive implements sessionmgr.Cluster.
func (c *Cluster) Alive(ctx context.Context, replica string) (bool, error) {
	n, err := c.rdb.Exists(ctx, c.aliveKey(replica)).Result()
	if err != nil {
		return false, wrap(err)
	}
	return n == 1, nil
}

// Forward implements sessionmgr.Cluster. ctx must carry a deadline; the
// request is dropped by the owner once it has passed.
func (c *Cluster) Forward(ctx context.Context, owner string, req sessionmgr.Forwarded) (sessionmgr.ForwardReply, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	env := envelope{Req: req, ReplyKey: c.prefix + ":{reply:" + rand.Text() + "}", Deadline: deadline}
	body, err := encodeEnvelope(env, c.version)
	if err != nil {
		return sessionmgr.ForwardReply{}, err
	}
	inbox := c.inboxKey(owner)
	if err := c.rdb.LPush(ctx, inbox, body).Err(); err != nil {
		return sessionmgr.ForwardReply{}, wrap(err)
	}
	// An inbox of a replica that died empties itself.
	_ = c.rdb.Expire(ctx, inbox, time.Minute).Err()
	wait := time.Until(deadline)
	if wait <= 0 {
		return sessionmgr.ForwardReply{}, fmt.Errorf("forward to %s: %w", owner, sessionmgr.ErrUnavailable)
	}
	res, err := c.rdb.BLPop(ctx, wait, env.ReplyKey).Result()
	if errors.Is(err, redis.Nil) || errors.Is(err, context.DeadlineExceeded) {
		return sessionmgr.ForwardReply{}, fmt.Errorf("replica %s did not answer in %v: %w", owner, wait.Round(time.Millisecond), sessionmgr.ErrUnavailable)
	}
	if err != nil {
		return sessionmgr.ForwardReply{}, wrap(err)
	}
	rep, err := decodeReply([]byte(res[1]))
	if err != nil {
		return sessionmgr.ForwardReply{}, fmt.Errorf("reply of %s: %w", owner, err)
	}
	return rep, nil
}

// Serve implements sessionmgr.Cluster: it takes requests off replica's
// inbox until ctx ends, handling up to MaxInFlight at once, and waits for
// the handlers it started before it returns.
func (c *Cluster) Serve(ctx context.Context, replica string, handle func(context.Context, sessionmgr.Forwarded) sessionmgr.ForwardReply) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, c.maxInFlight)
	inbox := c.inboxKey(replica)
	for {
		res, err := c.rdb.BRPop(ctx, time.Second, inbox).Result()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, redis.Nil) {
			continue // idle second
		}
		if err != nil {
			return wrap(err)
		}
		env, err := decodeEnvelope([]byte(res[1]))
		if err != nil {
			continue // not ours to answer: no reply key
		}
		if time.Now().After(env.Deadline) {
			continue // the forwarder gave up
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-slots }()
			hctx, cancel := context.WithDeadline(ctx, env.Deadline)
			defer cancel()
			rep := handle(hctx, env.Req)
			body, err := encodeReply(rep, c.version)
			if err != nil {
				return
			}
			pctx, pcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer pcancel()
			pipe := c.rdb.TxPipeline()
			pipe.LPush(pctx, env.ReplyKey, body)
			pipe.Expire(pctx, env.ReplyKey, 30*time.Second)
			_, _ = pipe.Exec(pctx)
		})
	}
}

// paceScript gives turns at least ARGV[1] ms apart per key, on the Redis
// server's clock (no skew between replicas): 0 when the turn is the
// caller's, else the milliseconds to wait.
var paceScript = redis.NewScript(rplumb.LuaNow + `
local now = now_ms()
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
if now >= nxt then
  redis.call('SET', KEYS[1], now + tonumber(ARGV[1]), 'PX', tonumber(ARGV[1]) * 4)
  return 0
end
return nxt - now
`)

// Pace implements sessionmgr.Cluster: turns on channel are spaced
// 1/perSecond apart across every replica, so at most ceil(perSecond) fall
// in any second (3 at the default 2.5, KVS's limit).
func (c *Cluster) Pace(ctx context.Context, channel string, perSecond float64) (time.Duration, error) {
	if perSecond <= 0 {
		return 0, nil
	}
	interval := max(time.Duration(float64(time.Second)/perSecond), time.Millisecond)
	key := c.prefix + ":{pace:" + rplumb.Digest(channel) + "}"
	ms, err := paceScript.Run(ctx, c.rdb, []string{key}, interval.Milliseconds()).Int64()
	if err != nil {
		return 0, wrap(err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// wrap marks Redis failures as sessionmgr.ErrUnavailable.
func wrap(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: redis: %v", sessionmgr.ErrUnavailable, err)
}

// takeScript is a token bucket on the Redis server's clock: KEYS[1] holds
// the tokens left and when they were counted; ARGV[1] tokens per second,
// ARGV[2] the burst, ARGV[3] the most tokens to take. It takes as many
// whole tokens as it can, up to ARGV[3], and returns {taken, 0}, or {0,
// the milliseconds until one is due}. (The key's fields are those of the
// one-token script before it, so replicas of both share a bucket.)
var takeScript = redis.NewScript(rplumb.LuaNow + `
local now = now_ms()
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'tk', 'ts')
local tokens = tonumber(v[1])
local ts = tonumber(v[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local taken, wait = 0, 0
if tokens >= 1 then
  taken = math.min(want, math.floor(tokens))
  tokens = tokens - taken
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tk', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {taken, wait}
`)

// Take takes one token from key's bucket, shared by every replica
// (service.RateLimiter): 0 when granted, else how long until a token is
// due. perSecond must be positive.
func (c *Cluster) Take(ctx context.Context, key string, perSecond float64, burst int) (time.Duration, error) {
	_, wait, err := c.TakeUpTo(ctx, key, 1, perSecond, burst)
	return wait, err
}

// TakeUpTo takes between 1 and n tokens from key's bucket in one round
// trip (service.BatchRateLimiter): how many it took, or 0 and how long
// until a token is due. perSecond must be positive.
func (c *Cluster) TakeUpTo(ctx context.Context, key string, n int, perSecond float64, burst int) (int, time.Duration, error) {
	if perSecond <= 0 {
		return max(n, 1), 0, nil
	}
	k := c.prefix + ":{rate:" + rplumb.Digest(key) + "}"
	res, err := takeScript.Run(ctx, c.rdb, []string{k}, perSecond, max(burst, 1), max(n, 1)).Int64Slice()
	if err != nil {
		return 0, 0, wrap(err)
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("take: unexpected script reply %v", res)
	}
	return int(res[0]), time.Duration(res[1]) * time.Millisecond, nil
}
