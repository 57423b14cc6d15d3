package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/acme/viewersession/kvsemu/camera"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/sessionmgr"
)

// TimerConfig sizes the retry-timer figure.
type TimerConfig struct {
	// Sessions is the number of sessions, all running at once. Default 100.
	Sessions int
	// PerChannel is the number of sessions per channel. Default 1: the
	// timer alone. With more, a channel's sessions share its connect pacer
	// (2.5/s, under KVS's 3/s), and a retry whose early dial queues behind
	// other sessions' connects leaves late for that reason.
	PerChannel int
	// AnswerTimeout and RetryDelay are the sessions' policy. Default 30s and
	// 6s, the service's defaults.
	AnswerTimeout, RetryDelay time.Duration
	// Stagger separates the starts of a channel's sessions. Default 500ms:
	// the service paces connects at 2.5/s per channel (under KVS's 3/s),
	// and sessions that start in step would meet the pacer again at their
	// retry and leave late for a reason that is not the timer's.
	Stagger time.Duration
}

func (c TimerConfig) withDefaults() TimerConfig {
	if c.Sessions <= 0 {
		c.Sessions = 100
	}
	if c.PerChannel <= 0 {
		c.PerChannel = 1
	}
	if c.AnswerTimeout <= 0 {
		c.AnswerTimeout = 30 * time.Second
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = 6 * time.Second
	}
	if c.Stagger <= 0 {
		c.Stagger = 500 * time.Millisecond
	}
	return c
}

// TimerResult is the retry-timer figure.
type TimerResult struct {
	Config TimerConfig
	// RetryError is |(second offer - first offer) - (answer_timeout +
	// retry_delay)| per session, both offers timed on arrival at the
	// emulator. FailError is |FAILED - (second offer + answer_timeout)|,
	// FAILED as the session's timeline stamps it.
	RetryError, FailError Dist
	// Late is how many second offers left later than expected (the rest
	// left early or on time).
	Late int
}

// TimerAccuracy runs cfg.Sessions sessions against cameras that never
// answer (camera fault NoAnswer) and measures, at the emulator, when each
// session's retry offer arrives against when the policy says it should.
func TimerAccuracy(ctx context.Context, cfg TimerConfig) (TimerResult, error) {
	cfg = cfg.withDefaults()
	res := TimerResult{Config: cfg}
	channels := (cfg.Sessions + cfg.PerChannel - 1) / cfg.PerChannel
	st, err := StartStack(ctx, StackConfig{
		Channels: channels,
		Camera:   CameraEmulator,
		Conns:    4,
		Manager:  func(c *sessionmgr.Config) { c.MinTimer = min(c.MinTimer, cfg.AnswerTimeout) },
	})
	if err != nil {
		return res, err
	}
	defer st.Close()
	for _, arn := range st.ARNs {
		if err := st.Emu.SetCameraFault(arn, camera.Fault{NoAnswer: true}); err != nil {
			return res, err
		}
	}
	offers, err := makeOffers(offerSlots)
	if err != nil {
		return res, err
	}
	opts := &vspb.SessionOptions{AnswerTimeout: durationpb.New(cfg.AnswerTimeout), RetryDelay: durationpb.New(cfg.RetryDelay)}
	type run struct {
		first, second string // the clientIds of the two offers
		failed        time.Time
	}
	var mu sync.Mutex
	var runs []run
	start := time.Now()
	limit := cfg.Stagger*time.Duration(cfg.PerChannel) + 3*(cfg.AnswerTimeout+cfg.RetryDelay) + time.Minute
	err = forEach(ctx, cfg.Sessions, cfg.Sessions, func(ctx context.Context, i int) error {
		ch, slot := i%channels, i/channels
		if err := sleepUntil(ctx, start.Add(time.Duration(slot)*cfg.Stagger)); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		cs, err := st.Create(ctx, ch, fmt.Sprintf("t-%d", i), opts)
		if err != nil {
			return fmt.Errorf("create: %w", err)
		}
		a, err := st.join(ctx, cs)
		if err != nil {
			return err
		}
		defer a.cancel()
		if err := a.offer(offers[slot%len(offers)]); err != nil {
			return err
		}
		_ = a.drain() // ends FAILED (DEADLINE_EXCEEDED, ANSWER_TIMEOUT)
		var ids []string
		var r run
		for _, e := range a.events {
			switch e.GetType() {
			case vspb.EventType_EVENT_TYPE_OFFER_SENT:
				ids = append(ids, e.GetClientId())
			case vspb.EventType_EVENT_TYPE_FAILED:
				if e.GetFailure().GetReason() != vspb.FailureReason_FAILURE_REASON_ANSWER_TIMEOUT {
					return fmt.Errorf("session %d failed with %v, want ANSWER_TIMEOUT", i, e.GetFailure())
				}
				r.failed = e.GetTime().AsTime()
			}
		}
		if len(ids) != 2 || r.failed.IsZero() {
			return fmt.Errorf("session %d: offers from %v, failed at %v; want 2 offers, then FAILED", i, ids, r.failed)
		}
		r.first, r.second = ids[0], ids[1]
		mu.Lock()
		runs = append(runs, r)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return res, err
	}
	// Offers as the emulator received them, by clientId (every clientId of
	// the run offers once: the retry leases a fresh one).
	arrived := make(map[string]time.Time)
	for _, arn := range st.ARNs {
		for _, r := range st.Emu.Messages(arn) {
			if r.From == "viewer" && r.Type == "SDP_OFFER" {
				arrived[r.ClientID] = r.Time
			}
		}
	}
	var retry, fail []time.Duration
	want := cfg.AnswerTimeout + cfg.RetryDelay
	for _, r := range runs {
		t1, ok1 := arrived[r.first]
		t2, ok2 := arrived[r.second]
		if !ok1 || !ok2 {
			return res, fmt.Errorf("the emulator saw no offer from %s or %s", r.first, r.second)
		}
		d := t2.Sub(t1) - want
		if d > 0 {
			res.Late++
		}
		retry = append(retry, abs(d))
		fail = append(fail, abs(r.failed.Sub(t2)-cfg.AnswerTimeout))
	}
	res.RetryError, res.FailError = NewDist(retry), NewDist(fail)
	return res, nil
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
