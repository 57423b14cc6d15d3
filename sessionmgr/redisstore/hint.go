package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/sessionmgr"
)

// RecoveryHint returns the step remembered for the channel, or
// sessionmgr.StepUnknown when none is, it expired, or it names a step this
// version does not know (a newer replica's).
func (s *Store) RecoveryHint(ctx context.Context, channelARN string) (sessionmgr.RecoveryStep, error) {
	cctx, cancel := s.bound(ctx)
	defer cancel()
	name, err := s.rdb.Get(cctx, hintKey(channelARN)).Result()
	if errors.Is(err, redis.Nil) {
		return sessionmgr.StepUnknown, nil
	}
	if err != nil {
		return sessionmgr.StepUnknown, callError(ctx, "read the recovery hint of "+channelARN, err)
	}
	return sessionmgr.ParseRecoveryStep(name), nil
}

// SetRecoveryHint remembers step for the channel for ttl (SET PX), by the
// step's name. An unknown step, a ttl that is not positive or an empty ARN
// is an error wrapping sessionmgr.ErrInvalidArgument.
func (s *Store) SetRecoveryHint(ctx context.Context, channelARN string, step sessionmgr.RecoveryStep, ttl time.Duration) error {
	switch {
	case channelARN == "":
		return fmt.Errorf("%w: recovery hint without a channel", sessionmgr.ErrInvalidArgument)
	case step == sessionmgr.StepUnknown || sessionmgr.ParseRecoveryStep(step.String()) != step:
		return fmt.Errorf("%w: recovery hint with step %v", sessionmgr.ErrInvalidArgument, step)
	case ttl <= 0:
		return fmt.Errorf("%w: recovery hint with ttl %v", sessionmgr.ErrInvalidArgument, ttl)
	}
	cctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.rdb.Do(cctx, "SET", hintKey(channelARN), step.String(), "PX", millis(ttl)).Err(); err != nil {
		return callError(ctx, "remember the recovery hint of "+channelARN, err)
	}
	return nil
}
