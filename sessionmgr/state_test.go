package sessionmgr

import (
	"errors"
	"fmt"
	"testing"
)

// TestNextTable pins the state machine: every state x every input.
// Each cell is the state after the input, or the error that refuses it
// (the state then stays as it was).
func TestNextTable(t *testing.T) {
	type cell struct {
		to  State
		err error
	}
	ok := func(s State) cell { return cell{to: s} }
	no := func(err error) cell { return cell{err: err} }
	stale := no(errStale)

	states := []State{StatePending, StateSignaling, StateAwaitingOffer, StateAwaitingAnswer, StateConnecting,
		StateConnected, StateRetrying, StateRecovering, StateFailed, StateClosed}
	inputs := []input{
		{kind: inJoin},
		{kind: inSignalingUp},
		{kind: inOffer},
		{kind: inOffer, requested: true},
		{kind: inOffer, requested: true, ready: true},
		{kind: inAnswer},
		{kind: inAnswerTimeout, attemptsLeft: true},
		{kind: inAnswerTimeout},
		{kind: inRetryDue},
		{kind: inRetryDue, recovering: true},
		{kind: inConnected},
		{kind: inMediaFlowing},
		{kind: inRecover},
		{kind: inStepTimeout},
		{kind: inStepTimeout, last: true},
		{kind: inClose},
		{kind: inFail},
		{kind: inTakeover},
	}
	// want[state] lists the cells in the order of inputs.
	want := map[State][]cell{
		StatePending: {
			ok(StateSignaling), stale, no(ErrNotJoined), no(ErrNotJoined), no(ErrNotJoined), stale,
			stale, stale, stale, stale, stale, stale, stale, stale, stale,
			ok(StateClosed), ok(StateFailed), ok(StatePending),
		},
		StateSignaling: {
			ok(StateSignaling), ok(StateAwaitingOffer), ok(StateSignaling), ok(StateSignaling), ok(StateSignaling), stale,
			stale, stale, stale, stale, stale, stale, stale, stale, stale,
			ok(StateClosed), ok(StateFailed), ok(StateRecovering),
		},
		StateAwaitingOffer: {
			ok(StateAwaitingOffer), stale, ok(StateAwaitingAnswer), ok(StateAwaitingAnswer), ok(StateAwaitingAnswer), stale,
			stale, stale, stale, stale, stale, stale, stale, stale, stale,
			ok(StateClosed), ok(StateFailed), ok(StateRecovering),
		},
		StateAwaitingAnswer: {
			ok(StateAwaitingAnswer), stale, no(ErrOfferInFlight), no(ErrOfferInFlight), no(ErrOfferInFlight), ok(StateConnecting),
			ok(StateRetrying), ok(StateFailed), stale, stale, stale, stale, stale, stale, stale,
			ok(StateClosed), ok(StateFailed), ok(StateRecovering),
		},
		StateConnecting: {
			ok(StateConnecting), stale, no(ErrOfferNotExpected), no(ErrOfferNotExpected), ok(StateAwaitingAnswer), stale,
			stale, stale, stale, stale, ok(StateConnected), ok(StateConnected), ok(StateRecovering), stale, stale,
			ok(StateClosed), ok(StateFailed), ok(StateRecovering),
		},
		StateConnected: {
			ok(StateConnected), stale, no(ErrOfferNotExpected), no(ErrOfferNotExpected), ok(StateAwaitingAnswer), stale,
			stale, stale, stale, stale, ok(StateConnected), ok(StateConnected), ok(StateRecovering), stale, stale,
			ok(StateClosed), ok(StateFailed), ok(StateRecovering),
		},
		StateRetrying: {
			ok(StateRetrying), stale, no(ErrOfferInFlight), no(ErrOfferInFlight), no(ErrOfferInFlight), stale,
			stale, stale, ok(StateSignaling), ok(StateRecovering), stale, stale, stale, stale, stale,
			ok(StateClosed), ok(StateFailed), ok(StateRecovering),
		},
		// A recovery stays RECOVERING through its offers, answers and
		// connected reports; only video (or a retry) takes it out.
		StateRecovering: {
			ok(StateRecovering), ok(StateRecovering), no(ErrOfferInFlight), ok(StateRecovering), ok(StateRecovering), ok(StateRecovering),
			ok(StateRetrying), ok(StateFailed), stale, stale, ok(StateRecovering), ok(StateConnected), ok(StateRecovering), ok(StateRecovering), ok(StateFailed),
			ok(StateClosed), ok(StateFailed), ok(StateRecovering),
		},
	}
	for _, term := range []State{StateFailed, StateClosed} {
		row := make([]cell, len(inputs))
		for i := range row {
			row[i] = no(ErrSessionClosed)
		}
		want[term] = row
	}
	for _, s := range states {
		row := want[s]
		if len(row) != len(inputs) {
			t.Fatalf("table row %s has %d cells, want %d", s, len(row), len(inputs))
		}
		for i, in := range inputs {
			name := fmt.Sprintf("%s/%s%+v", s, in.kind, in)
			t.Run(name, func(t *testing.T) {
				got, err := next(s, in)
				w := row[i]
				if w.err != nil {
					if !errors.Is(err, w.err) {
						t.Errorf("next(%s, %+v) error = %v, want %v", s, in, err, w.err)
					}
					if got != s {
						t.Errorf("next(%s, %+v) = %s with a refusal, want the state unchanged", s, in, got)
					}
					return
				}
				if err != nil || got != w.to {
					t.Errorf("next(%s, %+v) = %s, %v; want %s, nil", s, in, got, err, w.to)
				}
			})
		}
	}
}

func TestNextUnknownState(t *testing.T) {
	if _, err := next(StateUnknown, input{kind: inJoin}); !errors.Is(err, errUnknownState) {
		t.Errorf("next(UNKNOWN, join) error = %v, want errUnknownState", err)
	}
}

func TestStateStrings(t *testing.T) {
	tests := []struct {
		give fmt.Stringer
		want string
	}{
		{StateAwaitingAnswer, "AWAITING_ANSWER"},
		{StateClosed, "CLOSED"},
		{State(99), "State(99)"},
		{CloseClientGone, "CLIENT_GONE"},
		{FailureAnswerTimeout, "ANSWER_TIMEOUT"},
		{EventStaleAnswerDropped, "STALE_ANSWER_DROPPED"},
		{inStepTimeout, "step-timeout"},
		{StepNewPeerConnection, "NEW_PEER_CONNECTION"},
		{EventMediaStalled, "MEDIA_STALLED"},
	}
	for _, tt := range tests {
		if got := tt.give.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}
