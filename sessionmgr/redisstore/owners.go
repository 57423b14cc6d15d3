package redisstore

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/sessionmgr"
)

// movedMax bounds the moved sessions one Moved call returns; the rest
// come with the next calls, once Forget dropped these.
const movedMax = 1000

// Moved returns the sessions taken over from replica that Forget has not
// dropped (at most movedMax; taken over within movedKeep): one command.
func (s *Store) Moved(ctx context.Context, replica string) ([]sessionmgr.SessionID, error) {
	cctx, cancel := s.bound(ctx)
	defer cancel()
	ids, err := s.rdb.ZRange(cctx, movedKey(replica), 0, movedMax-1).Result()
	if err != nil {
		return nil, callError(ctx, "moved sessions of "+replica, err)
	}
	return toIDs(ids), nil
}

// Owned returns the live sessions the owner index lists for replica, and
// drops those whose lifetime (plus the live grace) has passed: one round
// trip.
func (s *Store) Owned(ctx context.Context, replica string) ([]sessionmgr.SessionID, error) {
	cctx, cancel := s.bound(ctx)
	defer cancel()
	key := ownedKey(replica)
	var ids *redis.StringSliceCmd
	_, err := s.rdb.TxPipelined(cctx, func(p redis.Pipeliner) error {
		p.ZRemRangeByScore(cctx, key, "-inf", "("+strconv.FormatInt(time.Now().UnixMilli(), 10))
		ids = p.ZRange(cctx, key, 0, -1)
		return nil
	})
	if err != nil {
		return nil, callError(ctx, "sessions owned by "+replica, err)
	}
	return toIDs(ids.Val()), nil
}

// Owners returns each session's owner and epoch from its record's fields
// (no JSON): one pipeline.
func (s *Store) Owners(ctx context.Context, ids []sessionmgr.SessionID) ([]sessionmgr.Ownership, error) {
	out := make([]sessionmgr.Ownership, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	cctx, cancel := s.bound(ctx)
	defer cancel()
	cmds := make([]*redis.SliceCmd, len(ids))
	if _, err := s.rdb.Pipelined(cctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			if validID(id) {
				cmds[i] = p.HMGet(cctx, recordKey(id), fieldEpoch, fieldOwner, fieldTerminal)
			}
		}
		return nil
	}); err != nil {
		return nil, callError(ctx, "owners of sessions", err)
	}
	for i, c := range cmds {
		if c == nil {
			continue
		}
		v := c.Val()
		epochText, _ := v[0].(string)
		epoch, err := strconv.ParseUint(epochText, 10, 64)
		if err != nil {
			continue // none (or malformed: nobody's)
		}
		owner, _ := v[1].(string)
		term, _ := v[2].(string)
		out[i] = sessionmgr.Ownership{Owner: owner, Epoch: epoch, Live: term != "1"}
	}
	return out, nil
}

// Replicas returns the replicas whose owner index may list sessions: one
// command.
func (s *Store) Replicas(ctx context.Context) ([]string, error) {
	cctx, cancel := s.bound(ctx)
	defer cancel()
	r, err := s.rdb.SMembers(cctx, replicasKey()).Result()
	if err != nil {
		return nil, callError(ctx, "replicas", err)
	}
	return r, nil
}

// forgetScript drops session ids from a moved set and an owner index, and
// the replica from the replicas when its index is then empty.
// KEYS: moved set, owner index, replicas. ARGV: replica, the number of
// moved ids, the moved ids, the owned ids.
var forgetScript = redis.NewScript(`
local n = tonumber(ARGV[2])
for i = 3, 2 + n do redis.call('ZREM', KEYS[1], ARGV[i]) end
for i = 3 + n, #ARGV do redis.call('ZREM', KEYS[2], ARGV[i]) end
if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[1]) end
return 1
`)

// Forget drops moved from replica's moved set and owned from its owner
// index, and replica from Replicas when its index is then empty: one
// script.
func (s *Store) Forget(ctx context.Context, replica string, moved, owned []sessionmgr.SessionID) error {
	cctx, cancel := s.bound(ctx)
	defer cancel()
	args := make([]any, 0, 2+len(moved)+len(owned))
	args = append(args, replica, len(moved))
	for _, id := range moved {
		args = append(args, string(id))
	}
	for _, id := range owned {
		args = append(args, string(id))
	}
	err := forgetScript.Run(cctx, s.rdb, []string{movedKey(replica), ownedKey(replica), replicasKey()}, args...).Err()
	if err != nil {
		return callError(ctx, "forget sessions of "+replica, err)
	}
	return nil
}

func toIDs(ss []string) []sessionmgr.SessionID {
	ids := make([]sessionmgr.SessionID, len(ss))
	for i, s := range ss {
		ids[i] = sessionmgr.SessionID(s)
	}
	return ids
}
