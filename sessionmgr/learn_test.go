package sessionmgr_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/memstore"
)

// outage changes the app's network and runs the app until the recovery
// ends; it returns the recovery's RECOVERY_STARTED events and its end.
func (a *app) outage(d time.Duration) (started []sessionmgr.Event, end sessionmgr.Event, at time.Time) {
	a.t.Helper()
	mark := a.seen
	at = time.Now()
	desc := "wifi->lte"
	a.mustSend(sessionmgr.AppMessage{NetworkChanged: &desc})
	a.run(d)
	started = a.since(mark, sessionmgr.EventRecoveryStarted)
	ends := a.since(mark, sessionmgr.EventRecovered, sessionmgr.EventFailed)
	if len(ends) != 1 {
		a.t.Fatalf("recovery ended %d times, want once; timeline:%s", len(ends), evSummary(a.since(mark)))
	}
	return started, ends[0], at
}

func stepsOf(evs []sessionmgr.Event) (steps []sessionmgr.RecoveryStep, learned []bool) {
	for _, e := range evs {
		steps = append(steps, e.Recovery.Step)
		learned = append(learned, e.Recovery.Learned)
	}
	return steps, learned
}

// TestLadderLearns: the second recovery on a channel, of the same session
// or another, starts at the step that worked for its master the first
// time.
func TestLadderLearns(t *testing.T) {
	tests := []struct {
		name   string
		camera camMode
		want   sessionmgr.RecoveryStep
	}{
		{"restart-capable", camRestartCapable, sessionmgr.StepICERestart},
		{"js-sample", camJSSample, sessionmgr.StepNewPeerConnection},
		{"c-sample", camCSample, sessionmgr.StepNewClientID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, &fakeCamera{mode: tt.camera})
				a := newApp(t, h, "v", sessionmgr.Options{})
				a.connect()
				_, end, _ := a.outage(10 * time.Second)
				if end.Type != sessionmgr.EventRecovered || end.Recovery.Step != tt.want {
					t.Fatalf("first recovery ended %s %+v, want RECOVERED by %s", end.Type, end.Recovery, tt.want)
				}
				synctest.Wait() // the hint's write
				if got, err := h.store.RecoveryHint(t.Context(), "arn:aws:kinesisvideo:us-west-2:1:channel/cam/1"); err != nil || got != tt.want {
					t.Errorf("stored hint %v, %v; want %v", got, err, tt.want)
				}
				for _, who := range []*app{a, newApp(t, h, "w", sessionmgr.Options{})} {
					if who != a {
						who.connect()
					}
					started, end, at := who.outage(10 * time.Second)
					steps, learned := stepsOf(started)
					if !slices.Equal(steps, []sessionmgr.RecoveryStep{tt.want}) || !learned[0] {
						t.Errorf("viewer %s, next recovery: steps %v learned %v, want [%s] learned; timeline:%s", who.id, steps, learned, tt.want, evSummary(started))
					}
					if started[0].Time != at {
						t.Errorf("the learned step started %v after the network change, want at once", started[0].Time.Sub(at))
					}
					if end.Type != sessionmgr.EventRecovered || end.Recovery.Step != tt.want {
						t.Errorf("viewer %s, next recovery ended %s %+v, want RECOVERED by %s", who.id, end.Type, end.Recovery, tt.want)
					}
				}
			})
		})
	}
}

// TestLadderLearnedStepFails: a learned step that no longer works (the
// channel's master changed) climbs on, and what works is remembered.
func TestLadderLearnedStepFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &fakeCamera{mode: camCSample})
		const arn = "arn:aws:kinesisvideo:us-west-2:1:channel/cam/1"
		if err := h.store.SetRecoveryHint(t.Context(), arn, sessionmgr.StepNewPeerConnection, time.Hour); err != nil {
			t.Fatal(err)
		}
		a := newApp(t, h, "v", sessionmgr.Options{})
		a.connect()
		started, end, at := a.outage(10 * time.Second)
		steps, learned := stepsOf(started)
		if !slices.Equal(steps, []sessionmgr.RecoveryStep{sessionmgr.StepNewPeerConnection, sessionmgr.StepNewClientID}) || !slices.Equal(learned, []bool{true, false}) {
			t.Errorf("steps %v learned %v, want [NEW_PEER_CONNECTION NEW_CLIENT_ID] [true false]", steps, learned)
		}
		if d := started[1].Time.Sub(at); d != sessionmgr.DefaultOptions().NewPeerConnectionTimeout {
			t.Errorf("NEW_CLIENT_ID %v after the change, want new_peer_connection_timeout", d)
		}
		if end.Type != sessionmgr.EventRecovered || end.Recovery.Step != sessionmgr.StepNewClientID {
			t.Errorf("ended %s %+v, want RECOVERED by NEW_CLIENT_ID", end.Type, end.Recovery)
		}
		synctest.Wait()
		if got, _ := h.store.RecoveryHint(t.Context(), arn); got != sessionmgr.StepNewClientID {
			t.Errorf("stored hint %v, want NEW_CLIENT_ID (what worked)", got)
		}
	})
}

// hintStore is a memstore whose hint reads fail or hang.
type hintStore struct {
	*memstore.Store
	fail error
	hang bool
}

func (s *hintStore) RecoveryHint(ctx context.Context, arn string) (sessionmgr.RecoveryStep, error) {
	if s.hang {
		<-ctx.Done()
		return sessionmgr.StepUnknown, ctx.Err()
	}
	if s.fail != nil {
		return sessionmgr.StepUnknown, s.fail
	}
	return s.Store.RecoveryHint(ctx, arn)
}

// TestLadderHintUnreadable: a store that fails or hangs on the hint delays
// a recovery by at most HintTimeout; the ladder then starts at the bottom.
func TestLadderHintUnreadable(t *testing.T) {
	tests := []struct {
		name  string
		store *hintStore
		delay time.Duration
	}{
		{"fails", &hintStore{fail: sessionmgr.ErrUnavailable}, 0},
		{"hangs", &hintStore{hang: true}, sessionmgr.DefaultConfig().HintTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tt.store.Store = memstore.New()
				const arn = "arn:aws:kinesisvideo:us-west-2:1:channel/cam/1"
				if err := tt.store.SetRecoveryHint(t.Context(), arn, sessionmgr.StepNewClientID, time.Hour); err != nil {
					t.Fatal(err)
				}
				h := newHarnessStore(t, &fakeCamera{mode: camRestartCapable}, tt.store)
				a := newApp(t, h, "v", sessionmgr.Options{})
				a.connect()
				started, end, at := a.outage(10 * time.Second)
				if len(started) == 0 || started[0].Recovery.Step != sessionmgr.StepICERestart || started[0].Recovery.Learned {
					t.Fatalf("first step %+v, want ICE_RESTART, not learned", started)
				}
				if d := started[0].Time.Sub(at); d != tt.delay {
					t.Errorf("recovery started %v after the change, want %v", d, tt.delay)
				}
				if end.Type != sessionmgr.EventRecovered {
					t.Errorf("ended %s, want RECOVERED", end.Type)
				}
				if errors.Is(tt.store.fail, sessionmgr.ErrUnavailable) {
					// Learning still writes: the write path is separate.
					synctest.Wait()
					if got, _ := tt.store.Store.RecoveryHint(t.Context(), arn); got != sessionmgr.StepICERestart {
						t.Errorf("stored hint %v, want ICE_RESTART", got)
					}
				}
			})
		})
	}
}
