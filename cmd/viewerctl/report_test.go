package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/viewerclient"
)

func TestJudge(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	ev := func(d time.Duration, typ vspb.EventType, step vspb.RecoveryStep, outage time.Duration) seenEvent {
		e := &vspb.SessionEvent{Type: typ}
		if step != vspb.RecoveryStep_RECOVERY_STEP_UNSPECIFIED {
			e.Detail = &vspb.SessionEvent_Recovery{Recovery: &vspb.Recovery{Step: step, Outage: durationpb.New(outage)}}
		}
		return seenEvent{at: at(d), e: e}
	}
	// flow samples 100 ms apart from from to to, growing 5 packets each,
	// starting at base.
	flow := func(from, to time.Duration, base int64) []sample {
		var ss []sample
		for d := from; d <= to; d += 100 * time.Millisecond {
			ss = append(ss, sample{at: at(d), packets: base})
			base += 5
		}
		return ss
	}
	flat := func(from, to time.Duration, n int64) []sample {
		var ss []sample
		for d := from; d <= to; d += 100 * time.Millisecond {
			ss = append(ss, sample{at: at(d), packets: n})
		}
		return ss
	}
	cat := func(parts ...[]sample) []sample {
		var ss []sample
		for _, p := range parts {
			ss = append(ss, p...)
		}
		return ss
	}
	const (
		stalled   = vspb.EventType_EVENT_TYPE_MEDIA_STALLED
		started   = vspb.EventType_EVENT_TYPE_RECOVERY_STARTED
		recovered = vspb.EventType_EVENT_TYPE_RECOVERED
		none      = vspb.RecoveryStep_RECOVERY_STEP_UNSPECIFIED
		restart   = vspb.RecoveryStep_RECOVERY_STEP_ICE_RESTART
		newID     = vspb.RecoveryStep_RECOVERY_STEP_NEW_CLIENT_ID
	)
	tests := []struct {
		name         string
		give         observation
		wantFirst    time.Duration
		wantBlack    time.Duration
		wantOutages  []string
		wantFalse    int
		wantErrs     []error
		wantErrWords string
	}{
		{
			name: "video throughout",
			give: observation{created: t0, end: at(10 * time.Second),
				stats:   viewerclient.Stats{FirstPacketAt: at(400 * time.Millisecond), LastPacketAt: at(9950 * time.Millisecond)},
				samples: flow(500*time.Millisecond, 10*time.Second, 1)},
			wantFirst: 400 * time.Millisecond,
		},
		{
			name: "an outage that recovered",
			give: observation{created: t0, end: at(10 * time.Second),
				stats: viewerclient.Stats{FirstPacketAt: at(300 * time.Millisecond), LastPacketAt: at(9990 * time.Millisecond),
					Gaps: []viewerclient.Gap{{From: at(3 * time.Second), To: at(5200 * time.Millisecond)}}},
				events: []seenEvent{
					ev(3500*time.Millisecond, stalled, none, 0),
					ev(3500*time.Millisecond, started, restart, 0),
					ev(4*time.Second, started, newID, 0),
					ev(5300*time.Millisecond, recovered, newID, 2300*time.Millisecond),
				},
				samples: cat(flow(300*time.Millisecond, 3*time.Second, 1), flat(3100*time.Millisecond, 5100*time.Millisecond, 200), flow(5200*time.Millisecond, 10*time.Second, 205))},
			wantFirst: 300 * time.Millisecond, wantBlack: 2200 * time.Millisecond, wantOutages: []string{"NEW_CLIENT_ID 2.3s"},
		},
		{
			name: "video stops at the end",
			give: observation{created: t0, end: at(10 * time.Second),
				stats:   viewerclient.Stats{FirstPacketAt: at(300 * time.Millisecond), LastPacketAt: at(6 * time.Second)},
				events:  []seenEvent{ev(8*time.Second, stalled, none, 0), ev(8*time.Second, started, restart, 0)},
				samples: cat(flow(300*time.Millisecond, 6*time.Second, 1), flat(6100*time.Millisecond, 10*time.Second, 300))},
			wantFirst: 300 * time.Millisecond, wantBlack: 4 * time.Second,
			wantErrs:     []error{errNotFlowing, errUnrecovered},
			wantErrWords: "video is not flowing at the end: no packets in the last 3s (the last arrived 4s before the end); an outage never recovered: MEDIA_STALLED at 10:00:08.000 had no RECOVERED after it",
		},
		{
			name: "a false recovery",
			give: observation{created: t0, end: at(10 * time.Second),
				stats: viewerclient.Stats{FirstPacketAt: at(300 * time.Millisecond), LastPacketAt: at(9900 * time.Millisecond),
					Gaps: []viewerclient.Gap{{From: at(3 * time.Second), To: at(7 * time.Second)}}},
				events: []seenEvent{
					ev(3500*time.Millisecond, started, restart, 0),
					ev(4*time.Second, recovered, restart, time.Second), // video came back only at 7 s
				},
				samples: cat(flow(300*time.Millisecond, 3*time.Second, 1), flat(3100*time.Millisecond, 6900*time.Millisecond, 200), flow(7*time.Second, 10*time.Second, 205))},
			wantFirst: 300 * time.Millisecond, wantBlack: 4 * time.Second, wantOutages: []string{"ICE_RESTART 1s"}, wantFalse: 1,
			wantErrs:     []error{errFalseRecovery},
			wantErrWords: "false recovery: RECOVERED at 10:00:04.000 (ICE_RESTART) was not followed by video within 1s",
		},
		{
			name: "a RECOVERED too close to the end is not judged",
			give: observation{created: t0, end: at(10 * time.Second),
				stats:   viewerclient.Stats{FirstPacketAt: at(300 * time.Millisecond), LastPacketAt: at(9900 * time.Millisecond)},
				events:  []seenEvent{ev(9*time.Second, started, restart, 0), ev(9500*time.Millisecond, recovered, restart, 500*time.Millisecond)},
				samples: flow(300*time.Millisecond, 10*time.Second, 1)},
			wantFirst: 300 * time.Millisecond, wantOutages: []string{"ICE_RESTART 500ms"},
		},
		{
			name:      "no video",
			give:      observation{created: t0, end: at(10 * time.Second)},
			wantFirst: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := judge(tt.give)
			if v.firstVideo != tt.wantFirst || v.black != tt.wantBlack || v.falseRecoveries != tt.wantFalse {
				t.Errorf("first video, black, false recoveries = %v, %v, %d; want %v, %v, %d",
					v.firstVideo, v.black, v.falseRecoveries, tt.wantFirst, tt.wantBlack, tt.wantFalse)
			}
			var outages []string
			for _, o := range v.outages {
				outages = append(outages, o.step+" "+o.outage.String())
			}
			if strings.Join(outages, ",") != strings.Join(tt.wantOutages, ",") {
				t.Errorf("outages %q, want %q", outages, tt.wantOutages)
			}
			err := v.err()
			if (err == nil) != (len(tt.wantErrs) == 0) {
				t.Fatalf("err() = %v, want %v", err, tt.wantErrs)
			}
			for _, want := range tt.wantErrs {
				if !errors.Is(err, want) {
					t.Errorf("err() = %v, want it to match %v", err, want)
				}
			}
			if err != nil && err.Error() != tt.wantErrWords {
				t.Errorf("err() =\n%q\nwant\n%q", err.Error(), tt.wantErrWords)
			}
		})
	}
}

func TestVerdictDescribe(t *testing.T) {
	v := verdict{firstVideo: 312 * time.Millisecond, outages: []outage{{step: "NEW_CLIENT_ID", outage: 2100 * time.Millisecond}},
		gaps: []time.Duration{2300 * time.Millisecond}, black: 2300 * time.Millisecond}
	if got, want := v.describe(), "first video after 312ms; outages: NEW_CLIENT_ID 2.1s; black 2.3s (gaps 2.3s)"; got != want {
		t.Errorf("describe() = %q, want %q", got, want)
	}
}
