package redisstore

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/sessionmgr"
)

// listBatch is how many listing members List reads at a time, at most.
const listBatch = 256

// ListScanBudget is how many listing members one List call reads at most
// while a filter skips them: a page may then come back short (even empty),
// with a cursor to go on from, instead of a walk over the whole listing
// that outlasts the call's timeout.
const ListScanBudget = 8 * listBatch

// sweepSample is how many random listing members a Create checks for a
// record that is gone.
const sweepSample = 4

// sweepOneIn: one Create in this many samples its listings (the sample
// reads were half of Create's CPU when every Create did it).
const sweepOneIn = 16

// List returns the sessions matching f, newest first (by Created, then by
// ID, both descending), at most limit of them (limit <= 0: all), after
// cursor, and the cursor of the next page ("" on the last). It walks the
// channel's listing when f names a channel, else every session's, reads
// the records, skips those that do not match, and drops the members whose
// record has expired. It reads at most ListScanBudget members: a filter
// that skips more gets a short page and a cursor. A malformed cursor is an error wrapping
// sessionmgr.ErrInvalidArgument.
func (s *Store) List(ctx context.Context, f sessionmgr.ListFilter, limit int, cursor string) ([]sessionmgr.Session, string, error) {
	upper := "+"
	if cursor != "" {
		m, err := parseCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		upper = "(" + m
	}
	key := listKey()
	if f.ChannelARN != "" {
		key = channelListKey(f.ChannelARN)
	}
	batch := listBatch
	if limit > 0 {
		batch = min(limit+1, listBatch)
	}

	cctx, cancel := s.bound(ctx)
	defer cancel()
	var (
		out      []sessionmgr.Session
		members  []string // out's listing members
		examined int
	)
	for full := false; !full; {
		if examined >= ListScanBudget {
			// Out of budget: a short page, and a cursor past what was read.
			return out, formatCursor(upper[1:]), nil
		}
		page, err := s.rdb.ZRevRangeByLex(cctx, key, &redis.ZRangeBy{Min: "-", Max: upper, Count: int64(batch)}).Result()
		if err != nil {
			return nil, "", callError(ctx, "list sessions", err)
		}
		if len(page) == 0 {
			break
		}
		recs, err := s.getMany(cctx, page)
		if err != nil {
			return nil, "", callError(ctx, "list sessions", err)
		}
		var gone []any
		now := time.Now()
		for i, rec := range recs {
			switch {
			case rec.ID == "":
				if settled(page[i], now) {
					gone = append(gone, page[i])
				}
			case full:
			case f.ChannelARN != "" && rec.Channel.ARN != f.ChannelARN,
				f.State != sessionmgr.StateUnknown && rec.State != f.State,
				f.ViewerID != "" && rec.ViewerID != f.ViewerID:
			default:
				out = append(out, rec)
				members = append(members, page[i])
				full = limit > 0 && len(out) > limit
			}
		}
		if len(gone) > 0 {
			// Best effort: the next List or Create tries again.
			_ = s.rdb.ZRem(cctx, key, gone...).Err()
		}
		if len(page) < batch {
			break
		}
		examined += len(page)
		upper = "(" + page[len(page)-1]
	}
	if limit > 0 && len(out) > limit {
		return out[:limit], formatCursor(members[limit-1]), nil
	}
	return out, "", nil
}

// getMany reads the records of listing members in one pipeline (across
// slots in a Cluster: one round trip per node). A member whose record is
// gone, or is malformed, yields a zero Session.
func (s *Store) getMany(ctx context.Context, members []string) ([]sessionmgr.Session, error) {
	cmds := make([]*redis.SliceCmd, len(members))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range members {
			if id, ok := memberID(m); ok {
				cmds[i] = p.HMGet(ctx, recordKey(id), fieldSession, fieldEpoch, fieldOwner)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]sessionmgr.Session, len(members))
	for i, cmd := range cmds {
		if cmd == nil {
			continue
		}
		id, _ := memberID(members[i])
		sess, err := decodeRecord(id, cmd.Val())
		switch {
		case errors.Is(err, sessionmgr.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			out[i] = sess
		}
	}
	return out, nil
}

// pruneBatch is how many members of every session's listing a prune
// checks.
const pruneBatch = 16

// prune checks the next pruneBatch members of every session's listing,
// oldest first from where the last prune of this Store stopped (wrapping
// at the end), and removes those whose record is gone. One Create in
// sweepOneIn runs it (on a single server, inside Create's script), so the listing is walked at about one member a
// Create and its dead members stay a bounded share of it, whatever the
// history, and a replica that creates nothing costs nothing. Best effort:
// errors are dropped.
func (s *Store) prune(ctx context.Context) {
	if rand.IntN(sweepOneIn) != 0 {
		return
	}
	lo := "-"
	if from := s.pruneStart(); from != "" {
		lo = "(" + from
	}
	page, err := s.rdb.ZRangeByLex(ctx, listKey(), &redis.ZRangeBy{Min: lo, Max: "+", Count: pruneBatch}).Result()
	if err != nil {
		return
	}
	next := ""
	if len(page) == pruneBatch {
		next = page[len(page)-1]
	}
	s.pruneNext(next)
	s.dropGone(ctx, listKey(), page)
}

// pruneStart is the listing member after which the next prune starts.
func (s *Store) pruneStart() string {
	s.pruneMu.Lock()
	defer s.pruneMu.Unlock()
	return s.pruneFrom
}

func (s *Store) pruneNext(member string) {
	s.pruneMu.Lock()
	defer s.pruneMu.Unlock()
	s.pruneFrom = member
}

// sweep removes, from a few random members of a listing, those whose
// record is gone, so that listings nobody pages through do not grow with
// expired sessions. It is best effort: errors are dropped.
func (s *Store) sweep(ctx context.Context, key string) {
	if rand.IntN(sweepOneIn) != 0 {
		return // List prunes what it meets; a sample now and then suffices
	}
	sample, err := s.rdb.ZRandMember(ctx, key, sweepSample).Result()
	if err != nil {
		return
	}
	s.dropGone(ctx, key, sample)
}

// dropGone removes from the listing key those of members whose record is
// gone. Best effort: errors are dropped.
func (s *Store) dropGone(ctx context.Context, key string, sample []string) {
	if len(sample) == 0 {
		return
	}
	cmds := make([]*redis.IntCmd, len(sample))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range sample {
			if id, ok := memberID(m); ok {
				cmds[i] = p.Exists(ctx, recordKey(id))
			}
		}
		return nil
	}); err != nil {
		return
	}
	var gone []any
	now := time.Now()
	for i, c := range cmds {
		if c != nil && c.Val() == 0 && settled(sample[i], now) {
			gone = append(gone, sample[i])
		}
	}
	if len(gone) > 0 {
		_ = s.rdb.ZRem(ctx, key, gone...).Err()
	}
}
