package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/sessionmgr"
)

// eventArgs encodes events as the (seq, event JSON) argument pairs of the
// create and save scripts.
func (s *Store) eventArgs(id sessionmgr.SessionID, events []sessionmgr.Event) ([]any, error) {
	args := make([]any, 0, 2*len(events))
	for _, e := range events {
		data, err := s.encodeEvent(e)
		if err != nil {
			return nil, fmt.Errorf("encode event %d of session %s: %w", e.Seq, id, err)
		}
		args = append(args, strconv.FormatUint(e.Seq, 10), string(data))
	}
	return args, nil
}

// firstEventArgs is eventArgs for a new timeline, whose events must be
// numbered 1, 2, ...
func (s *Store) firstEventArgs(id sessionmgr.SessionID, events []sessionmgr.Event) ([]any, error) {
	for i, e := range events {
		if e.Seq != uint64(i+1) {
			return nil, fmt.Errorf("%w: create session %s: event %d has seq %d", sessionmgr.ErrInvalidArgument, id, i, e.Seq)
		}
	}
	return s.eventArgs(id, events)
}

// luaEnded defines ended(id, ended key, all key, max per channel, max
// total, retention ms, prefix), which notes that session id has just ended
// in its channel's ended set and in every session's, drops the entries the
// retention expired, and removes the oldest ended sessions past the bounds
// (record and timeline; an empty notification wakes their followers, as
// Delete does): only on a single server, as it touches keys of any slot.
// Its parts trim(set, max, retention ms), which returns the ids it popped,
// and evict(id, prefix), which returns the session's channel ended set,
// serve the Cluster's scripts below.
const luaEnded = luaNow + `
local function trim(zkey, max, keep)
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', '(' .. string.format('%d', now_ms() - tonumber(keep)))
  local over = redis.call('ZCARD', zkey) - tonumber(max)
  local out = {}
  if tonumber(max) > 0 and over > 0 then
    local z = redis.call('ZPOPMIN', zkey, over)
    for i = 1, #z, 2 do out[#out + 1] = z[i] end
  end
  return out
end
local function evict(id, p)
  local rec = p .. '{' .. id .. '}:rec'
  local ek = redis.call('HGET', rec, 'ek')
  redis.call('DEL', rec, p .. '{' .. id .. '}:ev')
  redis.call('PUBLISH', p .. '{' .. id .. '}:tl', '')
  return ek
end
local function ended(id, ekey, akey, maxch, maxall, keep, p)
  local now = string.format('%d', now_ms())
  redis.call('ZADD', ekey, 'NX', now, id)
  redis.call('ZADD', akey, 'NX', now, id)
  for _, old in ipairs(trim(ekey, maxch, keep)) do
    evict(old, p)
    redis.call('ZREM', akey, old)
  end
  for _, old in ipairs(trim(akey, maxall, keep)) do
    local ek = evict(old, p)
    if ek then redis.call('ZREM', ek, old) end
  end
end
`

// saveScript is Save: Put's checks, then the events the timeline lacks
// (each published for the followers, as Append does), then the record,
// in one step. On a single server (ARGV[10] "1") the channel's live set
// and the owner's index follow in the same step, and so does the ended
// sessions' bound (ended) when the session has just ended.
// KEYS: record, timeline (and on a single server: live set, owner index).
// ARGV: session JSON, epoch, owner, terminal, channel ARN, Expires ms,
// retention ms, retention count, notification channel, single, session
// id, live score, the channel's ended set, every session's, the bounds
// per channel and in all, key prefix, then (seq, event JSON) pairs.
// Returns "ok", "rescore" (live, and Expires changed), "ended" (it has
// just ended: on a Cluster the caller bounds the ended sets), "notfound",
// "conflict:<epoch>", "channel:<stored ARN>", "closed" or "seq:<stored
// last seq>".
var saveScript = redis.NewScript(luaExpire + luaEnded + `
local r = redis.call('HMGET', KEYS[1], 'epoch', 'term', 'ch', 'exp', 'seq')
if not r[1] then return 'notfound' end
if r[1] ~= ARGV[2] then return 'conflict:' .. r[1] end
if r[3] ~= ARGV[5] then return 'channel:' .. r[3] end
if r[2] == '1' and ARGV[4] ~= '1' then return 'closed' end
local stored = tonumber(r[5]) or 0
local last = stored
for i = 18, #ARGV - 1, 2 do
  local q = tonumber(ARGV[i])
  if q > stored then
    if q <= last then return 'seq:' .. r[5] end
    last = q
  end
end
for i = 18, #ARGV - 1, 2 do
  if tonumber(ARGV[i]) > stored then
    redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[8], ARGV[i] .. '-0', '` + eventField + `', ARGV[i + 1])
    redis.call('PUBLISH', ARGV[9], ARGV[i + 1])
  end
end
redis.call('HSET', KEYS[1], 's', ARGV[1], 'owner', ARGV[3], 'term', ARGV[4], 'exp', ARGV[6],
  'seq', string.format('%d', last))
if r[2] ~= '1' then
  expire(KEYS[1], KEYS[2], ARGV[4], ARGV[6], ARGV[7])
elseif last > stored then
  follow(KEYS[1], KEYS[2])
end
local res = 'ok'
if ARGV[4] ~= '1' and r[4] ~= ARGV[6] then res = 'rescore' end
local justEnded = r[2] ~= '1' and ARGV[4] == '1'
if justEnded then redis.call('HSET', KEYS[1], 'ek', ARGV[13]) end
if ARGV[10] == '1' then
  if ARGV[4] == '1' then
    redis.call('ZREM', KEYS[3], ARGV[11])
    redis.call('ZREM', KEYS[4], ARGV[11])
  elseif res == 'rescore' then
    redis.call('ZADD', KEYS[3], 'XX', ARGV[12], ARGV[11])
    redis.call('ZADD', KEYS[4], 'XX', ARGV[12], ARGV[11])
  end
  if justEnded then ended(ARGV[11], ARGV[13], ARGV[14], ARGV[15], ARGV[16], ARGV[7], ARGV[17]) end
  return 'ok'
end
if justEnded then return 'ended' end
return res
`)

// endedAddScript is the Cluster half of the ended sessions' bound, on one
// ended set: it adds the session, drops what the retention expired, and
// pops the oldest past the bound. KEYS: the set. ARGV: session id, bound,
// retention ms. Returns the popped ids.
var endedAddScript = redis.NewScript(luaEnded + `
redis.call('ZADD', KEYS[1], 'NX', string.format('%d', now_ms()), ARGV[1])
return trim(KEYS[1], ARGV[2], ARGV[3])
`)

// evictScript removes an ended session pushed out by the bound, on a
// Cluster. KEYS: record. ARGV: session id, key prefix. Returns the
// session's channel ended set (or false).
var evictScript = redis.NewScript(luaEnded + `
return evict(ARGV[1], ARGV[2])
`)

// Save appends events to the session's timeline and replaces its record
// with sess, in one round trip on a single server (on a Cluster, a terminal
// save or a changed Expires takes a second, for the channel's live set and
// the owner index, and the first terminal save a third, for the ended
// sessions' bound). It fails, in this order, with sessionmgr.ErrNotFound,
// sessionmgr.ErrFenced when the stored Epoch differs from sess.Epoch, an
// error wrapping sessionmgr.ErrInvalidArgument when sess names another
// channel, sessionmgr.ErrSessionClosed when the stored session has ended
// and sess is not terminal, and sessionmgr.ErrSeqConflict, nothing
// changed, when the events the timeline lacks are not in increasing Seq
// order. Events the timeline already holds (Seq <= its last) are skipped.
// When a save ends the session, the oldest ended sessions past the bounds
// (WithEndedLimits) are removed.
func (s *Store) Save(ctx context.Context, sess sessionmgr.Session, events []sessionmgr.Event) error {
	if !validID(sess.ID) {
		return sessionmgr.ErrNotFound
	}
	data, err := s.encodeRecord(&sess)
	if err != nil {
		return err
	}
	evArgs, err := s.eventArgs(sess.ID, events)
	if err != nil {
		return err
	}
	cctx, cancel := s.bound(ctx)
	defer cancel()
	op := "save session " + string(sess.ID)
	keys := []string{recordKey(sess.ID), eventsKey(sess.ID)}
	single := "0"
	if s.single {
		single = "1"
		keys = append(keys, liveKey(sess.Channel.ARN), ownedKey(sess.Owner))
	}
	score := s.liveScore(&sess)
	res, err := saveScript.Run(cctx, s.rdb, keys,
		append([]any{data, strconv.FormatUint(sess.Epoch, 10), sess.Owner, terminalFlag(&sess), sess.Channel.ARN,
			unixMillis(sess.Expires), millis(s.retention), sessionmgr.EventRetention, timelineChannel(sess.ID),
			single, string(sess.ID), score, endedKey(sess.Channel.ARN), allEndedKey(), s.maxEndedPerChannel, s.maxEnded,
			prefix}, evArgs...)...).Text()
	if err != nil {
		return callError(ctx, op, err)
	}
	switch what, detail, _ := strings.Cut(res, ":"); what {
	case "ok", "rescore", "ended":
	case "notfound":
		return sessionmgr.ErrNotFound
	case "conflict":
		return fmt.Errorf("%s at epoch %d, stored epoch %s: %w", op, sess.Epoch, detail, sessionmgr.ErrFenced)
	case "channel":
		return fmt.Errorf("%w: %s: its channel is %s, not %s", sessionmgr.ErrInvalidArgument, op, detail, sess.Channel.ARN)
	case "closed":
		return fmt.Errorf("%s in state %v: it has ended: %w", op, sess.State, sessionmgr.ErrSessionClosed)
	case "seq":
		return fmt.Errorf("%s: events out of order after seq %s: %w", op, detail, sessionmgr.ErrSeqConflict)
	default:
		return fmt.Errorf("%s: unexpected script reply %q", op, res)
	}
	if s.single {
		return nil
	}
	// A Cluster: the live set and the owner index are in other slots.
	switch {
	case sess.Terminal():
		_, err = s.rdb.Pipelined(cctx, func(p redis.Pipeliner) error {
			p.ZRem(cctx, liveKey(sess.Channel.ARN), string(sess.ID))
			p.ZRem(cctx, ownedKey(sess.Owner), string(sess.ID))
			return nil
		})
	case res == "rescore":
		_, err = s.rdb.Pipelined(cctx, func(p redis.Pipeliner) error {
			z := redis.Z{Score: score, Member: string(sess.ID)}
			p.ZAddXX(cctx, liveKey(sess.Channel.ARN), z)
			p.ZAddXX(cctx, ownedKey(sess.Owner), z)
			return nil
		})
	}
	if err != nil {
		return callError(ctx, op+": live set", err)
	}
	if res == "ended" {
		s.boundEnded(ctx, sess)
	}
	return nil
}

// boundEnded is the ended sessions' bound on a Cluster, where the sets and
// the records are in different slots: it adds the session to both sets
// and removes the sessions they push out. Best effort: a failure leaves
// more ended sessions than the bound until the next, and the retention
// still ends them.
func (s *Store) boundEnded(ctx context.Context, sess sessionmgr.Session) {
	cctx, cancel := s.bound(context.WithoutCancel(ctx))
	defer cancel()
	id, keep := string(sess.ID), millis(s.retention)
	var byChannel, all *redis.Cmd
	if _, err := s.rdb.Pipelined(cctx, func(p redis.Pipeliner) error {
		byChannel = endedAddScript.Eval(cctx, p, []string{endedKey(sess.Channel.ARN)}, id, s.maxEndedPerChannel, keep)
		all = endedAddScript.Eval(cctx, p, []string{allEndedKey()}, id, s.maxEnded, keep)
		return nil
	}); err != nil {
		return
	}
	fromChannel, _ := byChannel.StringSlice()
	fromAll, _ := all.StringSlice()
	if len(fromChannel)+len(fromAll) == 0 {
		return
	}
	evicted := make([]*redis.Cmd, len(fromAll))
	_, _ = s.rdb.Pipelined(cctx, func(p redis.Pipeliner) error {
		for _, old := range fromChannel {
			evictScript.Eval(cctx, p, []string{recordKey(sessionmgr.SessionID(old))}, old, prefix)
			p.ZRem(cctx, allEndedKey(), old)
		}
		for i, old := range fromAll {
			evicted[i] = evictScript.Eval(cctx, p, []string{recordKey(sessionmgr.SessionID(old))}, old, prefix)
		}
		return nil
	})
	_, _ = s.rdb.Pipelined(cctx, func(p redis.Pipeliner) error {
		for i, c := range evicted {
			if ek, err := c.Text(); err == nil && ek != "" {
				p.ZRem(cctx, ek, fromAll[i])
			}
		}
		return nil
	})
}
