package webhook

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/internal/rplumb"
)

// The Redis queue's keys share the hash tag {webhooks}: the add script
// touches a once mark and the stream together, so they must share a slot
// on Redis Cluster.
const (
	// streamKey is the deliveries, a stream of entries {u: URL, b: body},
	// trimmed to about MaxQueue (MAXLEN ~).
	streamKey = rplumb.Prefix + "{webhooks}:q"
	// group is the stream's consumer group; each replica consumes in it
	// under its replica id.
	group = "deliver"
)

// onceKey marks that name was added (a session's first video), a string
// with a TTL.
func onceKey(name string) string { return rplumb.Prefix + "{webhooks}:once:" + name }

// addScript adds the deliveries ARGV[3..] (url, body pairs) to the stream
// KEYS[1], trimmed to about ARGV[1] entries; with KEYS[2], only if that
// once mark was not set (it sets it, with a TTL of ARGV[2] ms). 1: added.
var addScript = redis.NewScript(`
if #KEYS == 2 and not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then
	return 0
end
for i = 3, #ARGV, 2 do
	redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'u', ARGV[i], 'b', ARGV[i+1])
end
return 1
`)

// callTimeout bounds each Redis round trip (the server's client also has
// 1 s read and write timeouts).
const callTimeout = 2 * time.Second

// redisQueue is the queue shared by every replica: a Redis stream with
// one consumer group. Safe for concurrent use.
type redisQueue struct {
	rdb       redis.UniversalClient
	consumer  string
	max       int64
	claimIdle time.Duration

	// mu guards cursor, the next XAUTOCLAIM start.
	mu     sync.Mutex
	cursor string
}

func newRedisQueue(rdb redis.UniversalClient, consumer string, max int64, claimIdle time.Duration) *redisQueue {
	return &redisQueue{rdb: rdb, consumer: consumer, max: max, claimIdle: claimIdle, cursor: "0-0"}
}

// ensureGroup creates the stream and its group when either is missing (a
// first start, or a Redis that lost its data).
func (q *redisQueue) ensureGroup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	err := q.rdb.XGroupCreateMkStream(ctx, streamKey, group, "0").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return callError(ctx, "create the webhook consumer group", err)
	}
	return nil
}

func (q *redisQueue) add(ctx context.Context, once string, ttl time.Duration, items []item) (bool, error) {
	keys := []string{streamKey}
	if once != "" {
		keys = append(keys, onceKey(once))
	}
	args := []any{q.max, ttl.Milliseconds()}
	for _, it := range items {
		args = append(args, it.url, it.body)
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	n, err := addScript.Run(ctx, q.rdb, keys, args...).Int()
	if err != nil {
		return false, callError(ctx, "add webhook deliveries", err)
	}
	return n == 1, nil
}

func (q *redisQueue) next(ctx context.Context, n int) ([]entry, error) {
	const block = time.Second
	call := func() ([]redis.XStream, error) {
		ctx, cancel := context.WithTimeout(ctx, block+callTimeout)
		defer cancel()
		return q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: group, Consumer: q.consumer, Streams: []string{streamKey, ">"}, Count: int64(n), Block: block,
		}).Result()
	}
	res, err := call()
	if err != nil && redis.HasErrorPrefix(err, "NOGROUP") {
		if err := q.ensureGroup(ctx); err != nil {
			return nil, err
		}
		res, err = call()
	}
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, callError(ctx, "read webhook deliveries", err)
	}
	var out []entry
	for _, s := range res {
		out = append(out, entries(s.Messages)...)
	}
	return out, nil
}

func (q *redisQueue) claim(ctx context.Context, n int) ([]entry, error) {
	q.mu.Lock()
	start := q.cursor
	q.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	msgs, nextStart, err := q.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream: streamKey, Group: group, Consumer: q.consumer, MinIdle: q.claimIdle, Start: start, Count: int64(n),
	}).Result()
	if err != nil {
		if redis.HasErrorPrefix(err, "NOGROUP") {
			return nil, q.ensureGroup(ctx)
		}
		return nil, callError(ctx, "claim webhook deliveries", err)
	}
	q.mu.Lock()
	q.cursor = nextStart
	q.mu.Unlock()
	return entries(msgs), nil
}

func (q *redisQueue) touch(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	// XCLAIM to ourselves with JUSTID resets the entries' idle time
	// without counting a delivery.
	err := q.rdb.XClaimJustID(ctx, &redis.XClaimArgs{
		Stream: streamKey, Group: group, Consumer: q.consumer, MinIdle: 0, Messages: ids,
	}).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return callError(ctx, "touch webhook deliveries", err)
	}
	return nil
}

func (q *redisQueue) done(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	_, err := q.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAck(ctx, streamKey, group, id)
		p.XDel(ctx, streamKey, id)
		return nil
	})
	if err != nil {
		return callError(ctx, "finish a webhook delivery", err)
	}
	return nil
}

func (q *redisQueue) depth(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	n, err := q.rdb.XLen(ctx, streamKey).Result()
	if err != nil {
		return 0, callError(ctx, "count webhook deliveries", err)
	}
	return n, nil
}

// forgetConsumers removes the group's consumers other than this one that
// hold nothing and were idle for longer than idle (replicas gone for
// good), so the group does not grow with every restart.
func (q *redisQueue) forgetConsumers(ctx context.Context, idle time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	cs, err := q.rdb.XInfoConsumers(ctx, streamKey, group).Result()
	if err != nil {
		return callError(ctx, "list webhook consumers", err)
	}
	for _, c := range cs {
		if c.Name != q.consumer && c.Pending == 0 && c.Idle > idle {
			if err := q.rdb.XGroupDelConsumer(ctx, streamKey, group, c.Name).Err(); err != nil {
				return callError(ctx, "forget a webhook consumer", err)
			}
		}
	}
	return nil
}

// entries converts stream messages; a message without a URL (trimmed
// away, or not ours) becomes an entry with an empty url, which delivery
// drops.
func entries(msgs []redis.XMessage) []entry {
	out := make([]entry, 0, len(msgs))
	for _, m := range msgs {
		u, _ := m.Values["u"].(string)
		b, _ := m.Values["b"].(string)
		out = append(out, entry{id: m.ID, url: u, body: []byte(b)})
	}
	return out
}

// errUnavailable: Redis could not be reached or could not serve.
var errUnavailable = errors.New("redis unavailable")

// callError maps a failed round trip as the stores do (rplumb.Errors):
// the caller's own ctx ending as its error, an outage as errUnavailable,
// anything else (a bug) as a plain error; no go-redis type escapes.
func callError(ctx context.Context, op string, err error) error {
	return rplumb.Errors{Unavailable: errUnavailable}.Error(ctx, op, err)
}

// cursorAtStart reports whether the last claim scanned to the end of the
// pending entries.
func (q *redisQueue) cursorAtStart() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.cursor == "0-0"
}
