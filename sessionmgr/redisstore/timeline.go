package redisstore

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/internal/wire"
)

// eventField is the field of a timeline entry that holds the event's JSON.
const eventField = "e"

// encodeEvent is a timeline entry's JSON (wire.Event, of the version the
// Store writes), which is also what the append and save scripts publish.
func (s *Store) encodeEvent(e sessionmgr.Event) (string, error) {
	b, err := wire.EncodeEvent(e, s.version)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// decodeEvent reads a timeline entry's JSON of version 1 (replicas before
// version 2 wrote it) or 2.
func decodeEvent(data string) (sessionmgr.Event, error) { return wire.DecodeEvent([]byte(data)) }

// appendScript adds an event to a timeline when the fence and the sequence
// allow, trims the timeline, and gives it its record's TTL.
// It then publishes the event's JSON on the timeline's notification
// channel, for the followers of every replica (see follower).
// KEYS: record, timeline. ARGV: epoch, previous seq ("-" for none), seq,
// event JSON, retention count, notification channel. Returns "ok",
// "notfound", "epoch:<stored epoch>" or "seq:<stored last seq>".
var appendScript = redis.NewScript(luaExpire + `
local r = redis.call('HMGET', KEYS[1], 'epoch', 'seq')
if not r[1] then return 'notfound' end
if r[1] ~= ARGV[1] then return 'epoch:' .. r[1] end
if r[2] ~= ARGV[2] then return 'seq:' .. r[2] end
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[5], ARGV[3] .. '-0', 'e', ARGV[4])
redis.call('HSET', KEYS[1], 'seq', ARGV[3])
follow(KEYS[1], KEYS[2])
redis.call('PUBLISH', ARGV[6], ARGV[4])
return 'ok'
`)

// Append adds e to the session's timeline, as the stream entry <Seq>-0,
// keeping the newest sessionmgr.EventRetention. It fails with
// sessionmgr.ErrNotFound for an unknown session, and with
// sessionmgr.ErrFenced, the timeline unchanged, when epoch is not the
// stored Epoch, and ErrSeqConflict when e.Seq is not the last Seq + 1. It changes nothing in the
// session's record.
func (s *Store) Append(ctx context.Context, id sessionmgr.SessionID, epoch uint64, e sessionmgr.Event) error {
	if !validID(id) {
		return sessionmgr.ErrNotFound
	}
	data, err := s.encodeEvent(e)
	if err != nil {
		return fmt.Errorf("encode event %d of session %s: %w", e.Seq, id, err)
	}
	prev := "-"
	if e.Seq > 0 {
		prev = strconv.FormatUint(e.Seq-1, 10)
	}
	cctx, cancel := s.bound(ctx)
	defer cancel()
	op := "append to session " + string(id)
	res, err := appendScript.Run(cctx, s.rdb, []string{recordKey(id), eventsKey(id)},
		strconv.FormatUint(epoch, 10), prev, strconv.FormatUint(e.Seq, 10), data, sessionmgr.EventRetention, timelineChannel(id)).Text()
	if err != nil {
		return callError(ctx, op, err)
	}
	switch what, detail, _ := strings.Cut(res, ":"); what {
	case "ok":
		return nil
	case "notfound":
		return sessionmgr.ErrNotFound
	case "epoch":
		return fmt.Errorf("%s at epoch %d, stored epoch %s: %w", op, epoch, detail, sessionmgr.ErrFenced)
	case "seq":
		return fmt.Errorf("%s: seq %d after %s: %w", op, e.Seq, detail, sessionmgr.ErrSeqConflict)
	}
	return fmt.Errorf("%s: unexpected script reply %q", op, res)
}

// Events returns the session's events with Seq > after, oldest first, at
// most limit of them (limit <= 0: all). When there are none and wait is
// set, it waits until one is appended (then it returns what arrived) or
// ctx ends (then it returns ctx.Err()). It waits on the Store's follower
// (follow.go), holding no pooled connection while it waits: a wait costs
// one read of the stream when it starts, none when its reader already has
// the newest notified event (a watcher back for more), and none per event
// that follows on from its last. An unknown session, or one deleted while waiting, is
// sessionmgr.ErrNotFound.
func (s *Store) Events(ctx context.Context, id sessionmgr.SessionID, after uint64, limit int, wait bool) ([]sessionmgr.Event, error) {
	if !validID(id) {
		return nil, sessionmgr.ErrNotFound
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if wait {
		return s.waitEvents(ctx, id, after, limit)
	}
	return s.events(ctx, id, after, limit)
}

// events reads the timeline once, and whether the record exists, in one
// MULTI.
func (s *Store) events(ctx context.Context, id sessionmgr.SessionID, after uint64, limit int) ([]sessionmgr.Event, error) {
	cctx, cancel := s.bound(ctx)
	defer cancel()
	var (
		exists *redis.IntCmd
		read   *redis.XMessageSliceCmd
	)
	_, err := s.rdb.TxPipelined(cctx, func(p redis.Pipeliner) error {
		exists = p.Exists(cctx, recordKey(id))
		start := strconv.FormatUint(after+1, 10) + "-0"
		switch {
		case after == math.MaxUint64: // nothing can follow
		case limit > 0:
			read = p.XRangeN(cctx, eventsKey(id), start, "+", int64(limit))
		default:
			read = p.XRange(cctx, eventsKey(id), start, "+")
		}
		return nil
	})
	if err != nil {
		return nil, callError(ctx, "read events of session "+string(id), err)
	}
	if exists.Val() == 0 {
		return nil, sessionmgr.ErrNotFound
	}
	if read == nil {
		return nil, nil
	}
	return decodeEvents(id, after, read.Val())
}

// decodeEvents decodes timeline entries, checking that each is after
// `after` and is the entry of its own Seq.
func decodeEvents(id sessionmgr.SessionID, after uint64, msgs []redis.XMessage) ([]sessionmgr.Event, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	evs := make([]sessionmgr.Event, len(msgs))
	for i, m := range msgs {
		data, _ := m.Values[eventField].(string)
		e, err := decodeEvent(data)
		if err != nil {
			return nil, fmt.Errorf("decode event %s of session %s: %w", m.ID, id, err)
		}
		evs[i] = e
		if seq := evs[i].Seq; seq <= after || m.ID != strconv.FormatUint(seq, 10)+"-0" {
			return nil, fmt.Errorf("session %s: timeline entry %s holds event %d", id, m.ID, seq)
		}
	}
	return evs, nil
}
