package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/internal/rplumb"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/internal/wire"
)

// Store is a sessionmgr.Store on Redis. It is safe for concurrent use by
// any number of goroutines and replicas. Its follower runs two goroutines
// and one subscription connection while some Events call waits (and a
// linger after), whatever the number of waiting calls; Close stops them.
// The client is the caller's to close, after the Store's Close. Use New to
// make one.
type Store struct {
	rdb       redis.UniversalClient
	timeout   time.Duration
	retention time.Duration
	window    time.Duration
	slice     time.Duration
	grace     time.Duration
	linger    time.Duration
	tl        *follower
	// maxEnded and maxEndedPerChannel bound the ended sessions kept.
	maxEnded, maxEndedPerChannel int
	// single: every key is on one server (standalone or Sentinel), so a
	// script may touch keys of any slot (Create in one round trip).
	single bool
	// version is the wire version of the records and events it writes.
	version int

	// pruneMu guards pruneFrom: the listing member where the next prune
	// starts ("" for the oldest).
	pruneMu   sync.Mutex
	pruneFrom string
}

var _ sessionmgr.Store = (*Store)(nil)

// New returns a Store on rdb, a standalone, Sentinel or Cluster client;
// see the package doc for the options the client should have.
func New(rdb redis.UniversalClient, opts ...Option) *Store {
	s := &Store{
		rdb:       rdb,
		timeout:   DefaultTimeout,
		retention: DefaultRetention,
		window:    DefaultIdempotencyWindow,
		slice:     DefaultWaitSlice,
		grace:     DefaultLiveGrace,
		linger:    DefaultLinger,
		version:   wire.Version,

		maxEnded:           DefaultMaxEnded,
		maxEndedPerChannel: DefaultMaxEndedPerChannel,
	}
	for _, o := range opts {
		o(s)
	}
	s.tl = newFollower(rdb, s.linger)
	_, s.single = rdb.(*redis.Client)
	return s
}

// Close stops the follower: waiting Events calls return an error wrapping
// sessionmgr.ErrUnavailable, and later ones too. Every other method keeps
// working. Idempotent.
func (s *Store) Close() { s.tl.close() }

// bound returns ctx bounded by the per-call timeout.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// luaNow defines now_ms(): the server's clock in Unix milliseconds.
const luaNow = rplumb.LuaNow

// luaExpire defines follow(rec, ev), which gives the timeline its record's
// TTL, and expire(rec, ev, terminal, exp, retention), which sets a
// record's TTL by its state (see the package doc) and then follows it.
const luaExpire = luaNow + `
local function follow(rec, ev)
  local ttl = redis.call('PTTL', rec)
  if ttl > 0 then
    redis.call('PEXPIRE', ev, ttl)
  elseif ttl == -1 then
    redis.call('PERSIST', ev)
  end
end
local function expire(rec, ev, terminal, exp, retention)
  if terminal == '1' then
    redis.call('PEXPIRE', rec, retention)
  elseif exp ~= '' then
    redis.call('PEXPIREAT', rec, string.format('%d', math.max(tonumber(exp), now_ms()) + tonumber(retention)))
  else
    redis.call('PERSIST', rec)
  end
  follow(rec, ev)
end
`

// luaFirstEvents defines first_events(ev, from), which adds to the
// timeline ev the events given as ARGV pairs (seq, event JSON) from
// ARGV[from] on, and returns the last seq ('0' for none), and
// expire_new(rec, ev, terminal, exp, retention, now), expire for a record
// and timeline just written (neither has a TTL yet): it gives both the
// same one at once, where follow would read the record's back (PTTL),
// and takes the server's clock (now, ms) the script read already.
const luaFirstEvents = `
local function first_events(ev, from)
  local last = '0'
  for i = from, #ARGV - 1, 2 do
    redis.call('XADD', ev, ARGV[i] .. '-0', '` + eventField + `', ARGV[i + 1])
    last = ARGV[i]
  end
  return last
end
local function expire_new(rec, ev, terminal, exp, retention, now)
  if terminal == '1' then
    redis.call('PEXPIRE', rec, retention)
    redis.call('PEXPIRE', ev, retention)
  elseif exp ~= '' then
    local at = string.format('%d', math.max(tonumber(exp), now) + tonumber(retention))
    redis.call('PEXPIREAT', rec, at)
    redis.call('PEXPIREAT', ev, at)
  end
end
`

// createScript writes a new record and its first events unless the id is
// taken (0). It drops a timeline a previous session of the id may have
// left.
// KEYS: record, timeline. ARGV: session JSON, epoch, owner, terminal,
// channel ARN, idempotency key, listing member, Expires ms, retention ms,
// then (seq, event JSON) pairs.
var createScript = redis.NewScript(luaNow + luaFirstEvents + `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2])
local seq = first_events(KEYS[2], 10)
redis.call('HSET', KEYS[1], 's', ARGV[1], 'epoch', ARGV[2], 'owner', ARGV[3], 'term', ARGV[4],
  'ch', ARGV[5], 'seq', seq, 'idem', ARGV[6], 'm', ARGV[7], 'exp', ARGV[8])
expire_new(KEYS[1], KEYS[2], ARGV[4], ARGV[8], ARGV[9], now_ms())
return 1
`)

// reserveScript drops the live members whose time has passed, then, for a
// live session, takes a slot unless the channel is full (0), and lists the
// session on its channel (1).
// KEYS: live set, channel listing. ARGV: session id, live score, limit,
// listing member, live ("1" or "0").
var reserveScript = redis.NewScript(luaNow + `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', now_ms()))
if ARGV[5] == '1' then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
    return 0
  end
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
end
redis.call('ZADD', KEYS[2], 0, ARGV[4])
return 1
`)

// claimScript points a stale idempotency key (still holding the stale
// session id) at a new session, for the window (1); 0 when it changed.
// KEYS: idempotency key. ARGV: stale id, new id, window ms.
var claimScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`)

// releaseScript deletes an idempotency key if it names the session.
// KEYS: idempotency key. ARGV: session id.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Create inserts sess unless a session created with the same (Caller,
// RequestID) exists within the idempotency window (that session and
// sessionmgr.ErrAlreadyExists), the ID is taken (ErrAlreadyExists), or the
// channel has limit live sessions (ErrChannelFull). An ID that cannot name
// keys (empty, or with braces) is ErrInvalidArgument. On success it
// returns sess as written. See the package doc for the order of its steps.
func (s *Store) Create(ctx context.Context, sess sessionmgr.Session, limit int, events ...sessionmgr.Event) (sessionmgr.Session, error) {
	got, err := s.create(ctx, &sess, limit, nil, events)
	return value(got), err
}

// TakesLeases implements sessionmgr.LeaseTaker: on one server only (a
// script may not touch the lease's slot on a Cluster).
func (s *Store) TakesLeases() bool { return s.single }

// CreateTaking implements sessionmgr.LeaseTaker: Create, taking pl in the
// same script, in one round trip. On a Cluster it fails (TakesLeases).
func (s *Store) CreateTaking(ctx context.Context, sess sessionmgr.Session, limit int, pl sessionmgr.PreparedLease, events ...sessionmgr.Event) (sessionmgr.Session, error) {
	if !s.single {
		return sessionmgr.Session{}, errors.New("redisstore: CreateTaking on a Redis Cluster")
	}
	if pl.Key == "" || pl.Lease.Token == "" || pl.TTL <= 0 {
		return sessionmgr.Session{}, fmt.Errorf("%w: prepared lease without key, token or TTL", sessionmgr.ErrInvalidArgument)
	}
	got, err := s.create(ctx, &sess, limit, &pl, events)
	return value(got), err
}

// create is Create, taking pl (when not nil: one server only). It returns
// sess as written, or the session a repeat found (nil for none).
//
// It and the functions it calls take sessions by pointer and keep none in
// their frames: they run at the bottom of a CreateSession's stack, where
// the frames of sessionmgr.Session values (464 bytes each, as argument,
// result and copy) made every create grow its goroutine's stack a second
// time, copying it whole.
func (s *Store) create(ctx context.Context, sess *sessionmgr.Session, limit int, pl *sessionmgr.PreparedLease, events []sessionmgr.Event) (*sessionmgr.Session, error) {
	if !validID(sess.ID) {
		return nil, fmt.Errorf("%w: session id %q", sessionmgr.ErrInvalidArgument, sess.ID)
	}
	evArgs, err := s.firstEventArgs(sess.ID, events)
	if err != nil {
		return nil, err
	}
	cctx, cancel := s.bound(ctx)
	defer cancel()
	if s.single {
		return s.createOne(ctx, cctx, sess, limit, pl, evArgs)
	}
	return s.createMany(ctx, cctx, sess, limit, evArgs, false)
}

// createMany is Create on a Cluster: every step goes out in one pipeline
// (one round trip; go-redis sends each node its part at once): the
// channel's slot (reserveScript), the record with its first events
// (createScript), the listing and the owner index. A request with an id
// then claims its idempotency key (a second round trip: the key may only
// name a session whose record exists). A refusal (a full channel, a
// repeat, an id in use) undoes what went through, the repeat answered
// before the limit as on a single server.
func (s *Store) createMany(ctx, cctx context.Context, sess *sessionmgr.Session, limit int, evArgs []any, reloaded bool) (*sessionmgr.Session, error) {
	idem := idemKey(sess.Caller, sess.RequestID)
	data, err := s.encodeRecord(sess)
	if err != nil {
		return nil, err
	}
	member := listMember(sess.Created, sess.ID)
	live := "0"
	if sess.State.Live() {
		live = "1"
	}
	op := "create session " + string(sess.ID)
	var reserved, created *redis.Cmd
	_, err = s.rdb.Pipelined(cctx, func(p redis.Pipeliner) error {
		reserved = reserveScript.EvalSha(cctx, p, []string{liveKey(sess.Channel.ARN), channelListKey(sess.Channel.ARN)},
			string(sess.ID), s.liveScore(sess), limit, member, live)
		created = createScript.EvalSha(cctx, p, []string{recordKey(sess.ID), eventsKey(sess.ID)},
			append([]any{data, strconv.FormatUint(sess.Epoch, 10), sess.Owner, terminalFlag(sess), sess.Channel.ARN,
				idem, member, unixMillis(sess.Expires), millis(s.retention)}, evArgs...)...)
		p.ZAdd(cctx, listKey(), redis.Z{Member: member})
		if live == "1" {
			p.ZAdd(cctx, ownedKey(sess.Owner), redis.Z{Score: s.liveScore(sess), Member: string(sess.ID)})
			p.SAdd(cctx, replicasKey(), sess.Owner)
		}
		return nil
	})
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") && !reloaded {
		// A node without the scripts (the first create, or a restarted
		// node): undo what went through, load them, and go again.
		s.remove(ctx, sess.ID)
		if lerr := s.loadScripts(cctx); lerr != nil {
			return nil, callError(ctx, op+": load scripts", lerr)
		}
		return s.createMany(ctx, cctx, sess, limit, evArgs, true)
	}
	if err != nil {
		return nil, s.undoCreate(ctx, sess, member, false, callError(ctx, op, err))
	}
	// The id is taken (ids are random: in practice only a repeated
	// Create of one session): the record is another's.
	n, _ := created.Int()
	taken := n == 0
	full := false
	if n, _ := reserved.Int(); n == 0 {
		full = true
	}
	if taken || full {
		err := fmt.Errorf("%s: %w", op, sessionmgr.ErrAlreadyExists)
		if full {
			err = fmt.Errorf("%s: %w", op, sessionmgr.ErrChannelFull)
		}
		err = s.undoCreate(ctx, sess, member, taken, err)
		if idem != "" {
			// A repeat is answered before the limit.
			if prev, perr := s.repeatOf(cctx, idem); perr == nil {
				return &prev, sessionmgr.ErrAlreadyExists
			}
		}
		return nil, err
	}
	if idem != "" {
		// The request's key, in a second round trip: it may only name a
		// session whose record exists, so that a concurrent repeat that
		// finds the key finds the session too. It names another session:
		// a repeat; or a key that outlived its session, taken over.
		prev, err := s.claim(cctx, idem, sess.ID)
		if err != nil {
			return nil, s.undoCreate(ctx, sess, member, false, callError(ctx, op+": claim request", err))
		}
		if prev.ID != "" {
			return &prev, s.undoCreate(ctx, sess, member, false, sessionmgr.ErrAlreadyExists)
		}
	}
	s.sweep(cctx, channelListKey(sess.Channel.ARN))
	s.prune(cctx)
	return sess, nil
}

// undoCreate undoes what a refused or failed createMany wrote, and returns
// err. When the id was taken, the record is another session's: only this
// create's listing entries go. Otherwise remove deletes the record and
// every index entry of it.
func (s *Store) undoCreate(ctx context.Context, sess *sessionmgr.Session, member string, taken bool, err error) error {
	if !taken {
		s.remove(ctx, sess.ID)
		return err
	}
	rctx, cancel := s.bound(context.WithoutCancel(ctx))
	defer cancel()
	_, _ = s.rdb.Pipelined(rctx, func(p redis.Pipeliner) error {
		p.ZRem(rctx, channelListKey(sess.Channel.ARN), member)
		p.ZRem(rctx, listKey(), member)
		return nil
	})
	return err
}

// loadScripts loads Create's scripts on every node (a Cluster) or the
// server.
func (s *Store) loadScripts(ctx context.Context) error {
	load := func(ctx context.Context, c *redis.Client) error {
		for _, sc := range []*redis.Script{reserveScript, createScript} {
			if err := sc.Load(ctx, c).Err(); err != nil {
				return err
			}
		}
		return nil
	}
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachShard(ctx, load)
	}
	if c, ok := s.rdb.(*redis.Client); ok {
		return load(ctx, c)
	}
	return fmt.Errorf("unknown Redis client %T", s.rdb)
}

// createOneScript is Create on a single server (standalone or Sentinel),
// where a script may touch keys of any slot: every step of the multi-slot
// Create in one round trip, in the same order, atomically. One call in
// sweepOneIn also drops up to sweepSample random listing members of each
// listing whose record is gone, and prunes the global listing (prune).
// KEYS: record, timeline, live set, channel listing, global listing,
// idempotency key (a placeholder when there is none), the owner's owner
// index, the replicas with one, a clientId lease's key (a placeholder when
// there is none). ARGV: session JSON, epoch, owner, terminal, channel ARN,
// idempotency key name ("" for none), listing member, Expires ms,
// retention ms, session id, live score, limit, live ("1" or "0"), window
// ms, sweep ("1" or "0"), key prefix, where the global listing's prune
// starts (see prune), the lease's token ("" for none) and its TTL ms, then
// (seq, event JSON) pairs, the first events. After the checks (repeat,
// exists, full) and before any write it takes the lease (SET NX PX, or
// the key holds the token already: a retry). Returns {"ok"} ({"ok", where
// the next prune starts} after a sweep), {"exists"}, {"full"}, {"leased"}
// (the lease's id is another's) or {"repeat", JSON, epoch, owner}.
var createOneScript = redis.NewScript(luaNow + luaFirstEvents + `
local function rec(id) return ARGV[16] .. '{' .. id .. '}:rec' end
if ARGV[6] ~= '' then
  local prev = redis.call('GET', KEYS[6])
  if prev then
    local r = redis.call('HMGET', rec(prev), 's', 'epoch', 'owner')
    if r[1] then return {'repeat', r[1], r[2], r[3]} end
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. string.format('%d', now))
if ARGV[13] == '1' and redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[12]) and not redis.call('ZSCORE', KEYS[3], ARGV[10]) then
  return {'full'}
end
if ARGV[18] ~= '' and not redis.call('SET', KEYS[9], ARGV[18], 'NX', 'PX', ARGV[19]) and redis.call('GET', KEYS[9]) ~= ARGV[18] then
  return {'leased'}
end
if ARGV[13] == '1' then
  redis.call('ZADD', KEYS[3], ARGV[11], ARGV[10])
  redis.call('ZADD', KEYS[7], ARGV[11], ARGV[10])
  redis.call('SADD', KEYS[8], ARGV[3])
end
redis.call('DEL', KEYS[2])
local seq = first_events(KEYS[2], 20)
redis.call('HSET', KEYS[1], 's', ARGV[1], 'epoch', ARGV[2], 'owner', ARGV[3], 'term', ARGV[4],
  'ch', ARGV[5], 'seq', seq, 'idem', ARGV[6], 'm', ARGV[7], 'exp', ARGV[8])
expire_new(KEYS[1], KEYS[2], ARGV[4], ARGV[8], ARGV[9], now)
redis.call('ZADD', KEYS[4], 0, ARGV[7])
redis.call('ZADD', KEYS[5], 0, ARGV[7])
if ARGV[6] ~= '' then
  redis.call('SET', KEYS[6], ARGV[10], 'PX', ARGV[14])
end
if ARGV[15] == '1' then
  for _, key in ipairs({KEYS[4], KEYS[5]}) do
    for _, m in ipairs(redis.call('ZRANDMEMBER', key, ` + strconv.Itoa(sweepSample) + `)) do
      local id = string.sub(m, ` + strconv.Itoa(memberTimeLen+2) + `)
      if redis.call('EXISTS', rec(id)) == 0 then redis.call('ZREM', key, m) end
    end
  end
  local lo = '-'
  if ARGV[17] ~= '' then lo = '(' .. ARGV[17] end
  local page = redis.call('ZRANGEBYLEX', KEYS[5], lo, '+', 'LIMIT', 0, ` + strconv.Itoa(pruneBatch) + `)
  for _, m in ipairs(page) do
    if redis.call('EXISTS', rec(string.sub(m, ` + strconv.Itoa(memberTimeLen+2) + `))) == 0 then redis.call('ZREM', KEYS[5], m) end
  end
  if #page == ` + strconv.Itoa(pruneBatch) + ` then return {'ok', page[#page]} end
  return {'ok', ''}
end
return {'ok'}
`)

// createOne is Create on a single server, in one round trip.
func (s *Store) createOne(ctx, cctx context.Context, sess *sessionmgr.Session, limit int, pl *sessionmgr.PreparedLease, evArgs []any) (*sessionmgr.Session, error) {
	idem := idemKey(sess.Caller, sess.RequestID)
	idemSlot := idem
	if idem == "" {
		idemSlot = prefix + "{idem:none}" // never read or written
	}
	data, err := s.encodeRecord(sess)
	if err != nil {
		return nil, err
	}
	live, sweep := "0", "0"
	if sess.State.Live() {
		live = "1"
	}
	if rand.IntN(sweepOneIn) == 0 {
		sweep = "1"
	}
	member := listMember(sess.Created, sess.ID)
	op := "create session " + string(sess.ID)
	leaseKey, leaseTTL, leaseToken, leaseID := prefix+"{lease:none}", millis(0), "", "" // the key never read or written
	if pl != nil {
		leaseKey, leaseTTL, leaseToken, leaseID = pl.Key, millis(pl.TTL), pl.Lease.Token, pl.Lease.ClientID
	}
	res, err := createOneScript.Run(cctx, s.rdb,
		[]string{recordKey(sess.ID), eventsKey(sess.ID), liveKey(sess.Channel.ARN), channelListKey(sess.Channel.ARN), listKey(), idemSlot,
			ownedKey(sess.Owner), replicasKey(), leaseKey},
		append([]any{data, strconv.FormatUint(sess.Epoch, 10), sess.Owner, terminalFlag(sess), sess.Channel.ARN,
			idem, member, unixMillis(sess.Expires), millis(s.retention), string(sess.ID), s.liveScore(sess), limit, live,
			millis(s.window), sweep, prefix, s.pruneStart(), leaseToken, leaseTTL}, evArgs...)...).StringSlice()
	if err != nil {
		return nil, callError(ctx, op, err)
	}
	switch {
	case len(res) <= 2 && res[0] == "ok":
		if len(res) == 2 {
			s.pruneNext(res[1])
		}
		return sess, nil // what was written: no need to decode it back
	case len(res) == 1 && res[0] == "exists":
		return nil, fmt.Errorf("%s: %w", op, sessionmgr.ErrAlreadyExists)
	case len(res) == 1 && res[0] == "full":
		return nil, fmt.Errorf("%s: %w", op, sessionmgr.ErrChannelFull)
	case len(res) == 1 && res[0] == "leased":
		return nil, fmt.Errorf("%s: clientId %s: %w", op, leaseID, sessionmgr.ErrLeaseTaken)
	case len(res) == 4 && res[0] == "repeat":
		return repeated(op, res[1], res[2], res[3])
	}
	return nil, fmt.Errorf("%s: unexpected script reply %q", op, res)
}

// repeated is the session a repeat of a create found (its record's JSON,
// epoch and owner), and sessionmgr.ErrAlreadyExists.
func repeated(op, data, epochText, owner string) (*sessionmgr.Session, error) {
	epoch, err := strconv.ParseUint(epochText, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%s: repeat: bad epoch %q", op, epochText)
	}
	prev, err := decodeSession(data, epoch, owner)
	if err != nil {
		return nil, err
	}
	return &prev, sessionmgr.ErrAlreadyExists
}

// value is *sess, or the zero Session for nil.
func value(sess *sessionmgr.Session) sessionmgr.Session {
	if sess == nil {
		return sessionmgr.Session{}
	}
	return *sess
}

// repeatOf returns the session the idempotency key names, or ErrNotFound
// when there is none or it is gone.
func (s *Store) repeatOf(ctx context.Context, idem string) (sessionmgr.Session, error) {
	id, err := s.rdb.Get(ctx, idem).Result()
	if errors.Is(err, redis.Nil) {
		return sessionmgr.Session{}, sessionmgr.ErrNotFound
	}
	if err != nil {
		return sessionmgr.Session{}, err
	}
	return s.get(ctx, sessionmgr.SessionID(id))
}

// claim points the idempotency key at id for the window. When it names a
// session that exists (a concurrent repeat won), it returns that session;
// a key that outlived its session is taken over.
func (s *Store) claim(ctx context.Context, idem string, id sessionmgr.SessionID) (sessionmgr.Session, error) {
	for range 3 {
		ok, err := s.rdb.SetNX(ctx, idem, string(id), s.window).Result()
		if err != nil || ok {
			return sessionmgr.Session{}, err
		}
		holder, err := s.rdb.Get(ctx, idem).Result()
		if errors.Is(err, redis.Nil) {
			continue // it expired just now
		}
		if err != nil {
			return sessionmgr.Session{}, err
		}
		prev, err := s.get(ctx, sessionmgr.SessionID(holder))
		if !errors.Is(err, sessionmgr.ErrNotFound) {
			return prev, err
		}
		// The key outlived its session: take it over, unless someone
		// else just did.
		n, err := claimScript.Run(ctx, s.rdb, []string{idem}, holder, string(id), millis(s.window)).Int()
		if err != nil || n == 1 {
			return sessionmgr.Session{}, err
		}
	}
	return sessionmgr.Session{}, fmt.Errorf("request key of session %s keeps changing: %w", id, sessionmgr.ErrConflict)
}

// liveScore is when sess stops counting against its channel's limit, in
// Unix ms: its Expires plus the grace, or never (+Inf).
func (s *Store) liveScore(sess *sessionmgr.Session) float64 {
	if sess.Expires.IsZero() {
		return math.Inf(1)
	}
	return float64(sess.Expires.Add(s.grace).UnixMilli())
}

// Get returns the session, or sessionmgr.ErrNotFound.
func (s *Store) Get(ctx context.Context, id sessionmgr.SessionID) (sessionmgr.Session, error) {
	if !validID(id) {
		return sessionmgr.Session{}, sessionmgr.ErrNotFound
	}
	cctx, cancel := s.bound(ctx)
	defer cancel()
	sess, err := s.get(cctx, id)
	if err != nil && !errors.Is(err, sessionmgr.ErrNotFound) {
		return sessionmgr.Session{}, callError(ctx, "get session "+string(id), err)
	}
	return sess, err
}

// get reads a record: ErrNotFound, or a round trip's error as it is.
func (s *Store) get(ctx context.Context, id sessionmgr.SessionID) (sessionmgr.Session, error) {
	vals, err := s.rdb.HMGet(ctx, recordKey(id), fieldSession, fieldEpoch, fieldOwner).Result()
	if err != nil {
		return sessionmgr.Session{}, err
	}
	return decodeRecord(id, vals)
}

// decodeRecord decodes the values of HMGET session, epoch, owner.
func decodeRecord(id sessionmgr.SessionID, vals []any) (sessionmgr.Session, error) {
	data, ok := vals[0].(string)
	if !ok {
		return sessionmgr.Session{}, sessionmgr.ErrNotFound
	}
	epochText, _ := vals[1].(string)
	owner, _ := vals[2].(string)
	epoch, err := strconv.ParseUint(epochText, 10, 64)
	if err != nil {
		return sessionmgr.Session{}, fmt.Errorf("session %s: bad epoch %q", id, epochText)
	}
	return decodeSession(data, epoch, owner)
}

// Put replaces the session's record: Save with no events (see Save for
// its errors, the live set and the ended sessions' bound).
func (s *Store) Put(ctx context.Context, sess sessionmgr.Session) error {
	return s.Save(ctx, sess, nil)
}

// luaMove defines move(from, to, id, score, keep, key prefix), which
// moves session id from the owner index of replica from to that of
// replica to (scored score, "+inf" for never), records it in from's moved
// set (kept keep ms) and lists to among the replicas. Every key it touches
// is in the slot {owners}.
const luaMove = luaNow + `
local function move(from, to, id, score, keep, p)
  local now = now_ms()
  local moved = p .. '{owners}:' .. from .. ':moved'
  redis.call('ZREM', p .. '{owners}:' .. from .. ':owned', id)
  redis.call('ZADD', moved, now, id)
  redis.call('ZREMRANGEBYSCORE', moved, '-inf', '(' .. string.format('%d', now - tonumber(keep)))
  redis.call('PEXPIRE', moved, keep)
  redis.call('ZADD', p .. '{owners}:' .. to .. ':owned', score, id)
  redis.call('SADD', p .. '{owners}', to)
end
`

// takeoverScript is the compare-and-set of Takeover, and on a single
// server (ARGV[4] "1") the owner index's move too, in the same step.
// KEYS: record. ARGV: from epoch, to epoch, owner, single, session id,
// live grace ms, moved keep ms, key prefix. Returns {"ok", session JSON,
// previous owner, Expires ms}, {"notfound"}, {"closed"} or {"conflict",
// stored epoch}.
var takeoverScript = redis.NewScript(luaMove + `
local r = redis.call('HMGET', KEYS[1], 'epoch', 'term', 's', 'owner', 'exp')
if not r[1] then return {'notfound'} end
if r[2] == '1' then return {'closed'} end
if r[1] ~= ARGV[1] then return {'conflict', r[1]} end
redis.call('HSET', KEYS[1], 'epoch', ARGV[2], 'owner', ARGV[3])
local from, exp = r[4] or '', r[5] or ''
if ARGV[4] == '1' then
  local score = '+inf'
  if exp ~= '' then score = string.format('%d', tonumber(exp) + tonumber(ARGV[6])) end
  move(from, ARGV[3], ARGV[5], score, ARGV[7], ARGV[8])
end
return {'ok', r[3], from, exp}
`)

// moveScript is the owner index's part of Takeover on a Cluster, where it
// cannot share the record's script (another slot). KEYS: the replicas
// (for the slot). ARGV: from, to, session id, score, keep ms, key prefix.
var moveScript = redis.NewScript(luaMove + `
move(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
return 1
`)

// Takeover makes owner the session's owner when its stored Epoch is
// fromEpoch: the record gets Epoch fromEpoch+1 and Owner owner, and is
// returned. It fails, in this order, with sessionmgr.ErrNotFound,
// sessionmgr.ErrSessionClosed when the session has ended, and
// sessionmgr.ErrFenced when the epoch moved on.
func (s *Store) Takeover(ctx context.Context, id sessionmgr.SessionID, owner string, fromEpoch uint64) (sessionmgr.Session, error) {
	if !validID(id) {
		return sessionmgr.Session{}, sessionmgr.ErrNotFound
	}
	cctx, cancel := s.bound(ctx)
	defer cancel()
	op := "take over session " + string(id)
	single := "0"
	if s.single {
		single = "1"
	}
	res, err := takeoverScript.Run(cctx, s.rdb, []string{recordKey(id)},
		strconv.FormatUint(fromEpoch, 10), strconv.FormatUint(fromEpoch+1, 10), owner,
		single, string(id), millis(s.grace), millis(movedKeep), prefix).StringSlice()
	if err != nil {
		return sessionmgr.Session{}, callError(ctx, op, err)
	}
	switch {
	case len(res) == 4 && res[0] == "ok":
		if !s.single {
			// Best effort, after the record (never an entry the record
			// contradicts): the old owner's next write fails the fence
			// anyway, and its sweep checks what the index says.
			score := "+inf"
			if exp, err := strconv.ParseInt(res[3], 10, 64); err == nil {
				score = strconv.FormatInt(exp+millis(s.grace), 10)
			}
			_ = moveScript.Run(cctx, s.rdb, []string{replicasKey()}, res[2], owner, string(id), score, millis(movedKeep), prefix).Err()
		}
		return decodeSession(res[1], fromEpoch+1, owner)
	case len(res) == 1 && res[0] == "notfound":
		return sessionmgr.Session{}, sessionmgr.ErrNotFound
	case len(res) == 1 && res[0] == "closed":
		return sessionmgr.Session{}, fmt.Errorf("%s: it has ended: %w", op, sessionmgr.ErrSessionClosed)
	case len(res) == 2 && res[0] == "conflict":
		return sessionmgr.Session{}, fmt.Errorf("%s from epoch %d, stored epoch %s: %w", op, fromEpoch, res[1], sessionmgr.ErrFenced)
	}
	return sessionmgr.Session{}, fmt.Errorf("%s: unexpected script reply %q", op, res)
}

// deleteScript removes a record and its timeline and returns the record's
// channel ARN, listing member, idempotency key and owner; nil when there
// is none.
// It publishes an empty notification, which wakes the session's readers.
// KEYS: record, timeline. ARGV: notification channel.
var deleteScript = redis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'ch', 'm', 'idem', 'owner')
if not r[1] then return false end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('PUBLISH', ARGV[1], '')
return r
`)

// Delete removes the session, its timeline and its index entries, or
// returns sessionmgr.ErrNotFound. Events calls waiting on it return
// ErrNotFound.
func (s *Store) Delete(ctx context.Context, id sessionmgr.SessionID) error {
	if !validID(id) {
		return sessionmgr.ErrNotFound
	}
	cctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.delete(cctx, id); err != nil {
		return callError(ctx, "delete session "+string(id), err)
	}
	return nil
}

// delete removes the record and timeline, then the index entries; it
// returns a round trip's error as it is.
func (s *Store) delete(ctx context.Context, id sessionmgr.SessionID) error {
	fields, err := deleteScript.Run(ctx, s.rdb, []string{recordKey(id), eventsKey(id)}, timelineChannel(id)).StringSlice()
	if err != nil {
		return err
	}
	if len(fields) != 4 {
		return fmt.Errorf("unexpected script reply %q", fields)
	}
	arn, member, idem, owner := fields[0], fields[1], fields[2], fields[3]
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, liveKey(arn), string(id))
		p.ZRem(ctx, ownedKey(owner), string(id))
		p.ZRem(ctx, channelListKey(arn), member)
		p.ZRem(ctx, listKey(), member)
		return nil
	})
	if err != nil {
		return err
	}
	if idem != "" {
		return releaseScript.Run(ctx, s.rdb, []string{idem}, string(id)).Err()
	}
	return nil
}

// remove undoes a Create half-way: it deletes the session with a timeout
// of its own, even when ctx has ended. What it fails to remove the indexes
// shed later (see the package doc), so its error is dropped.
func (s *Store) remove(ctx context.Context, id sessionmgr.SessionID) {
	rctx, cancel := s.bound(context.WithoutCancel(ctx))
	defer cancel()
	_ = s.delete(rctx, id)
}

// terminalFlag is the record's terminal field for sess.
func terminalFlag(sess *sessionmgr.Session) string {
	if sess.Terminal() {
		return "1"
	}
	return "0"
}

// encodeRecord is the record's JSON (wire.Session, of the version the
// Store writes): the session without Owner and Epoch, which the record
// keeps in fields of their own for the scripts.
func (s *Store) encodeRecord(sess *sessionmgr.Session) (string, error) {
	b, err := wire.EncodeSession(sess, s.version)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// decodeSession reads the record's JSON, of version 1 (replicas before
// version 2 wrote it) or 2, and sets the epoch and owner the record keeps
// beside it.
func decodeSession(data string, epoch uint64, owner string) (sessionmgr.Session, error) {
	sess, err := wire.DecodeSession([]byte(data))
	if err != nil {
		return sessionmgr.Session{}, err
	}
	sess.Epoch, sess.Owner = epoch, owner
	return sess, nil
}
