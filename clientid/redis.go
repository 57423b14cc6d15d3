package clientid

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/internal/rplumb"
)

// Redis is the allocator shared by every replica. Each (channel, id) is one
// key, hash-tagged by channel so one Lua call can touch every candidate of a
// channel in Redis Cluster:
//
//	<KeyPrefix>:cid:{<channel>}:<id>  ->  owner token, or "released"
//
// Acquire sets the key with SET NX PX LeaseTTL+cooldown (a Lua script tries
// the candidates in order and takes the first it can); Renew pushes that
// TTL out again; Release overwrites the value with a tombstone that lives
// for the cooldown alone. The key is never deleted, so an id whose owner
// died expires into its cooldown, never straight to free. Ids are only as
// durable as the keys: a Redis that loses its data forgets every cooldown.
//
// Its methods are safe for concurrent use. It does not own the client.
type Redis struct {
	rdb  redis.UniversalClient
	cfg  Config
	rand io.Reader
	// compat makes the acquire script use its pre-Redis-7 path (tests).
	compat bool
}

// NewRedis returns an allocator on rdb. Zero fields of cfg take their
// defaults. WithClock does not apply: expiry runs on the Redis server's clock.
//
// Build rdb with ContextTimeoutEnabled set: without it go-redis ignores
// context deadlines on the socket, so neither Config.Timeout nor the
// caller's deadline bounds a call to a server that does not answer (the
// client's ReadTimeout, 5 s by default, does).
func NewRedis(rdb redis.UniversalClient, cfg Config, opts ...Option) *Redis {
	o := newOptions(opts)
	return &Redis{rdb: rdb, cfg: cfg.withDefaults(), rand: o.rand}
}

// tombstone is the value of a released key. It is never a token (tokens are
// 26 base32 characters), so no lease can renew or release it.
const tombstone = "released"

// acquireScript takes the first candidate key it can, in KEYS order.
// ARGV[1] is the owner token, ARGV[2] LeaseTTL+cooldown in milliseconds.
// It returns the 1-based index of the key taken, or 0 when all are busy. A
// key that already holds this very token was taken by an earlier attempt of
// the same call (the client retried after losing the reply): it counts.
//
// Redis 7 does both in one command (SET NX GET: nil when set, else the old
// value); older servers, or ARGV[3] == "compat", take a SET NX and a GET.
var acquireScript = redis.NewScript(`
local token, ttl = ARGV[1], ARGV[2]
if (redis.REDIS_VERSION_NUM or 0) >= 0x070000 and ARGV[3] ~= 'compat' then
  for i, key in ipairs(KEYS) do
    local old = redis.call('SET', key, token, 'NX', 'PX', ttl, 'GET')
    if not old or old == token then
      return i
    end
  end
  return 0
end
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, token, 'NX', 'PX', ttl) or redis.call('GET', key) == token then
    return i
  end
end
return 0
`)

// renewScript pushes a live lease's expiry out to LeaseTTL+cooldown from
// now. KEYS[1] is the key; ARGV[1] the token, ARGV[2] the cooldown and
// ARGV[3] LeaseTTL+cooldown, in milliseconds. A lease is live while its key
// holds the token and has more than the cooldown left to live; past that it
// has expired into its cooldown and cannot come back. Returns 1 or 0.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('PTTL', KEYS[1]) <= tonumber(ARGV[2]) then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

// releaseScript overwrites a live lease's key with the tombstone, to live
// for the cooldown. KEYS[1] is the key; ARGV[1] the token, ARGV[2] the
// cooldown in milliseconds, ARGV[3] the tombstone. Returns 1 or 0.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('PTTL', KEYS[1]) <= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
return 1
`)

// keyPrefix starts the key of every id of channel; the id completes it.
func (r *Redis) keyPrefix(channel string) string {
	return r.cfg.KeyPrefix + ":cid:{" + channel + "}:"
}

// Acquire leases the first free candidate for req: the sanitized base, then
// base-2 .. base-MaxSuffix, then base-<random> (a random id when req.Base is
// empty). An uncontended acquire is one round trip: a plain SET NX on the
// first candidate. When that one is busy, one Lua call tries every
// candidate in order and takes the first it can (at once, with
// Request.FirstTaken).
//
// It fails with ErrInvalid for a request without a channel, ErrExhausted
// when every candidate is live or cooling down, ErrUnavailable when Redis
// cannot be reached or does not answer within Config.Timeout, and the
// context's error when ctx is done. On error it returns no id.
func (r *Redis) Acquire(ctx context.Context, req Request) (Lease, error) {
	return r.acquire(ctx, req, newToken())
}

// acquire is Acquire with the owner token given: a retry of the same call
// (same token) gets the id the first attempt took.
func (r *Redis) acquire(ctx context.Context, req Request, token string) (Lease, error) {
	if err := req.validate(); err != nil {
		return Lease{}, err
	}
	cooldown := r.cfg.cooldown(req.MessageTTL)
	ttl := millis(r.cfg.LeaseTTL + cooldown)
	lease := Lease{Channel: req.Channel, Token: token, Cooldown: cooldown}
	keyPrefix := r.keyPrefix(req.Channel)

	base := sanitizeBase(req.Base)
	random := ""
	first := ID(base)
	if base == "" {
		var err error
		if random, err = randomString(r.rand); err != nil {
			return Lease{}, err
		}
		first = ID(random)
	}
	// The common case: the first candidate is free (unless the caller has
	// just found it taken).
	if !req.FirstTaken {
		ok, err := r.setNX(ctx, keyPrefix+string(first), token, ttl)
		switch {
		case err != nil:
			return Lease{}, err
		case ok:
			lease.ID = first
			return lease, nil
		}
	}
	// Contended: every candidate in one script, the first one again
	// included (it may have been freed meanwhile, or be ours already if
	// the SET above was applied but its reply lost and the client retried).
	if random == "" {
		var err error
		if random, err = randomString(r.rand); err != nil {
			return Lease{}, err
		}
	}
	cands := candidates(base, r.cfg.MaxSuffix, random)
	args := []any{token, ttl}
	if r.compat {
		args = append(args, "compat")
	}
	id, err := r.take(ctx, keyPrefix, cands, args)
	switch {
	case err != nil:
		return Lease{}, err
	case id == "":
		return Lease{}, fmt.Errorf("%w: channel %s, every candidate from %q busy", ErrExhausted, req.Channel, cands[0])
	}
	lease.ID = id
	return lease, nil
}

// Prepared is a lease of the first candidate, not yet taken: taking it is
// setting Key to Lease.Token, if Key is absent (or already holds the
// token), to live TTL: the SET NX PX of Acquire's common case. A script of
// another package on the same Redis server (sessionmgr/redisstore's
// create) takes it in its own round trip, as the session's record is
// written; Acquire is the way when it was busy.
type Prepared struct {
	Lease Lease
	Key   string
	TTL   time.Duration
}

// Prepare returns req's first candidate as a Prepared lease (the
// sanitized base, else a random id), touching nothing. Errors as Acquire's
// for an invalid request.
func (r *Redis) Prepare(req Request) (Prepared, error) {
	if err := req.validate(); err != nil {
		return Prepared{}, err
	}
	cooldown := r.cfg.cooldown(req.MessageTTL)
	first := ID(sanitizeBase(req.Base))
	if first == "" {
		random, err := randomString(r.rand)
		if err != nil {
			return Prepared{}, err
		}
		first = ID(random)
	}
	return Prepared{
		Lease: Lease{Channel: req.Channel, ID: first, Token: newToken(), Cooldown: cooldown},
		Key:   r.keyPrefix(req.Channel) + string(first),
		TTL:   time.Duration(millis(r.cfg.LeaseTTL+cooldown)) * time.Millisecond,
	}, nil
}

// setNX sets key to token for ttl milliseconds if it does not exist, and
// reports whether it did.
func (r *Redis) setNX(ctx context.Context, key, token string, ttl int64) (bool, error) {
	callCtx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	ok, err := r.rdb.SetNX(callCtx, key, token, time.Duration(ttl)*time.Millisecond).Result()
	if err != nil {
		return false, r.callError(ctx, "acquire", err)
	}
	return ok, nil
}

// take runs the acquire script over cands (keys keyPrefix+id) and returns
// the id it took, or "" when all were busy.
func (r *Redis) take(ctx context.Context, keyPrefix string, cands []ID, args []any) (ID, error) {
	keys := make([]string, len(cands))
	for i, id := range cands {
		keys[i] = keyPrefix + string(id)
	}
	callCtx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	n, err := acquireScript.Run(callCtx, r.rdb, keys, args...).Int()
	switch {
	case err != nil:
		return "", r.callError(ctx, "acquire", err)
	case n < 0 || n > len(cands):
		return "", fmt.Errorf("acquire: script returned %d of %d candidates", n, len(cands))
	case n == 0:
		return "", nil
	}
	return cands[n-1], nil
}

// Renew extends a live lease by LeaseTTL from now. It fails with
// ErrNotOwner when l's token no longer owns the id (released, expired or
// taken), ErrUnavailable when Redis cannot be reached in time, and the
// context's error when ctx is done.
func (r *Redis) Renew(ctx context.Context, l Lease) error {
	cooldown := r.cooldown(l)
	return r.fenced(ctx, "renew", renewScript, l, millis(cooldown), millis(r.cfg.LeaseTTL+cooldown))
}

// renewChunk bounds the leases of one RenewMany pipeline; renewGroup the
// leases of one script call in it.
const (
	renewChunk = 1000
	renewGroup = 100
)

// renewManyScript is renewScript for several leases of one channel (their
// keys share its hash slot) with the same cooldown. KEYS are the leases'
// keys; ARGV[1] is the cooldown and ARGV[2] LeaseTTL+cooldown, in
// milliseconds, and ARGV[2+i] the token of KEYS[i]. Returns 1 or 0 per key,
// in order.
var renewManyScript = redis.NewScript(`
local cooldown = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = 0
  if redis.call('GET', key) == ARGV[2 + i] and redis.call('PTTL', key) > cooldown then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 1
  end
end
return out
`)

// RenewMany renews each of leases as Renew would, the renewals of up to
// renewChunk leases in one pipeline (one round trip, per node of a Redis
// Cluster), each bounded by Config.Timeout: one script call per channel
// and cooldown (up to renewGroup leases each), so that a replica's idle
// sessions cost Redis and the replica's heap a call per channel, not per
// lease, every interval. errs[i] is leases[i]'s answer: nil when renewed,
// else what Renew would have failed with (ErrNotOwner, ErrUnavailable, the
// context's error). The first renewals after Redis lost its script cache
// take a second round trip.
func (r *Redis) RenewMany(ctx context.Context, leases []Lease) (errs []error) {
	errs = make([]error, len(leases))
	// The leases to renew, in order of channel and cooldown, so that each
	// group is a run of them.
	todo := make([]int, 0, len(leases))
	for i, l := range leases {
		if l.Token == "" {
			errs[i] = fmt.Errorf("%w: %s in channel %s", ErrNotOwner, l.ID, l.Channel)
			continue
		}
		todo = append(todo, i)
	}
	slices.SortFunc(todo, func(a, b int) int {
		return cmp.Or(strings.Compare(leases[a].Channel, leases[b].Channel), cmp.Compare(r.cooldown(leases[a]), r.cooldown(leases[b])))
	})
	for start := 0; start < len(todo); start += renewChunk {
		r.renewChunk(ctx, leases, todo[start:min(start+renewChunk, len(todo))], errs)
	}
	return errs
}

func (r *Redis) cooldown(l Lease) time.Duration { return max(l.Cooldown, r.cfg.DefaultCooldown) }

// renewChunk renews leases[i] for each i of todo (sorted by channel and
// cooldown) in one pipeline (two when the script is not cached) and sets
// errs[i].
func (r *Redis) renewChunk(ctx context.Context, leases []Lease, todo []int, errs []error) {
	callCtx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	// The groups: runs of todo of one channel and cooldown.
	var groups [][]int
	for start := 0; start < len(todo); {
		l := leases[todo[start]]
		end := start + 1
		for end < len(todo) && end-start < renewGroup && leases[todo[end]].Channel == l.Channel && r.cooldown(leases[todo[end]]) == r.cooldown(l) {
			end++
		}
		groups = append(groups, todo[start:end])
		start = end
	}
	cmds := make([]*redis.Cmd, len(groups))
	run := func(which []int, eval bool) {
		_, _ = r.rdb.Pipelined(callCtx, func(p redis.Pipeliner) error {
			for _, g := range which {
				first := leases[groups[g][0]]
				prefix := r.keyPrefix(first.Channel)
				cooldown := r.cooldown(first)
				keys := make([]string, len(groups[g]))
				args := make([]any, 2, 2+len(groups[g]))
				args[0], args[1] = millis(cooldown), millis(r.cfg.LeaseTTL+cooldown)
				for j, i := range groups[g] {
					keys[j] = prefix + string(leases[i].ID)
					args = append(args, leases[i].Token)
				}
				if eval {
					cmds[g] = renewManyScript.Eval(callCtx, p, keys, args...)
				} else {
					cmds[g] = renewManyScript.EvalSha(callCtx, p, keys, args...)
				}
			}
			return nil
		}) // each command carries its own error
	}
	all := make([]int, len(groups))
	for g := range all {
		all[g] = g
	}
	run(all, false)
	var noScript []int
	for g, c := range cmds {
		if err := c.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			noScript = append(noScript, g)
		}
	}
	if len(noScript) > 0 {
		run(noScript, true)
	}
	for g, c := range cmds {
		renewed, err := c.Int64Slice()
		if err == nil && len(renewed) != len(groups[g]) {
			err = fmt.Errorf("renew: script answered %d of %d leases", len(renewed), len(groups[g]))
		}
		for j, i := range groups[g] {
			l := leases[i]
			switch {
			case err != nil:
				errs[i] = r.callError(ctx, "renew", err)
			case renewed[j] != 1:
				errs[i] = fmt.Errorf("%w: %s in channel %s", ErrNotOwner, l.ID, l.Channel)
			}
		}
	}
}

// Release ends a live lease: the key becomes a tombstone that lives for the
// lease's cooldown, after which the id is free. It fails with ErrNotOwner
// when l's token no longer owns the id (then it is already cooling down or
// someone else's), ErrUnavailable when Redis cannot be reached in time (the
// lease then expires into its cooldown), and the context's error when ctx
// is done.
func (r *Redis) Release(ctx context.Context, l Lease) error {
	cooldown := max(l.Cooldown, r.cfg.DefaultCooldown)
	return r.fenced(ctx, "release", releaseScript, l, millis(cooldown), tombstone)
}

// fenced runs a renew or release script for l and maps its answer.
func (r *Redis) fenced(ctx context.Context, op string, s *redis.Script, l Lease, args ...any) error {
	if l.Token == "" {
		return fmt.Errorf("%w: %s in channel %s", ErrNotOwner, l.ID, l.Channel)
	}
	callCtx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	n, err := s.Run(callCtx, r.rdb, []string{r.keyPrefix(l.Channel) + string(l.ID)}, append([]any{l.Token}, args...)...).Int()
	switch {
	case err != nil:
		return r.callError(ctx, op, err)
	case n != 1:
		return fmt.Errorf("%w: %s in channel %s", ErrNotOwner, l.ID, l.Channel)
	}
	return nil
}

// callError maps a failed round trip (rplumb.Errors): the caller's own
// context error as it is, an outage (network, timeout, a server that is
// loading, read-only, out of memory, busy ...) as ErrUnavailable, anything
// else (a script or data error) as a plain error.
func (r *Redis) callError(ctx context.Context, op string, err error) error {
	return rplumb.Errors{Unavailable: ErrUnavailable}.Error(ctx, op, err)
}

// millis converts d to whole milliseconds for PX, rounding up so a TTL is
// never shorter than asked and never zero.
func millis(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// returnScript frees a live lease's key at once. KEYS[1] is the key;
// ARGV[1] the token, ARGV[2] the cooldown in milliseconds. Returns 1, or
// 0 when the lease is not (or no longer) live.
var returnScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('PTTL', KEYS[1]) <= tonumber(ARGV[2]) then return 0 end
return redis.call('DEL', KEYS[1])
`)

// Return ends a live lease whose id was never presented to KVS (a
// session refused after its lease was taken): the id is free at once,
// with no cooldown. Errors as for Release. Use Release for an id KVS may
// have seen.
func (r *Redis) Return(ctx context.Context, l Lease) error {
	cooldown := max(l.Cooldown, r.cfg.DefaultCooldown)
	return r.fenced(ctx, "return", returnScript, l, millis(cooldown))
}
