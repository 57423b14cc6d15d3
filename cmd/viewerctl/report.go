package main

import (
	"fmt"
	"strings"
	"time"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/viewerclient"
)

// What watch judges video by.
const (
	// flowingWithin: video flows at the end when a packet arrived within
	// this long before it.
	flowingWithin = 3 * time.Second
	// recoveredWithin: a RECOVERED must be followed by more packets within
	// this long, or it was a false recovery.
	recoveredWithin = time.Second
	// sampleInterval is how often watch samples the packet counters (and
	// prints a JSON media line).
	sampleInterval = 100 * time.Millisecond
)

// seenEvent is a timeline event and when viewerctl received it (its own
// clock, like the packet times).
type seenEvent struct {
	at time.Time
	e  *vspb.SessionEvent
}

// sample is the run's packet count at a moment.
type sample struct {
	at      time.Time
	packets int64
}

// observation is what a watch saw: the input of judge.
type observation struct {
	created time.Time // CreateSession returned
	end     time.Time // -duration was up, or interrupted (before closing)
	stats   viewerclient.Stats
	events  []seenEvent
	samples []sample
}

// outage is one the service reported with RECOVERED.
type outage struct {
	at     time.Time
	step   string
	outage time.Duration
}

// verdict is how the watch went, for the user.
type verdict struct {
	firstVideo      time.Duration // -1: no video
	outages         []outage
	gaps            []time.Duration // measured by viewerctl, the last maybe open at the end
	black           time.Duration   // their sum
	falseRecoveries int
	problems        []error
}

// judge sums up what a watch saw and says what went wrong with the video:
// not flowing at the end, an outage that never recovered, a RECOVERED not
// followed by video.
func judge(o observation) verdict {
	v := verdict{firstVideo: -1}
	s := o.stats
	if !s.FirstPacketAt.IsZero() {
		v.firstVideo = s.FirstPacketAt.Sub(o.created)
	}
	for _, g := range s.Gaps {
		v.gaps = append(v.gaps, g.To.Sub(g.From))
	}
	if !s.LastPacketAt.IsZero() && o.end.Sub(s.LastPacketAt) > viewerclient.VideoGap {
		v.gaps = append(v.gaps, o.end.Sub(s.LastPacketAt))
	}
	for _, g := range v.gaps {
		v.black += g
	}
	if !s.LastPacketAt.IsZero() && o.end.Sub(s.LastPacketAt) > flowingWithin {
		v.problems = append(v.problems, fmt.Errorf("%w: no packets in the last %v (the last arrived %v before the end)",
			errNotFlowing, flowingWithin, o.end.Sub(s.LastPacketAt).Round(time.Millisecond)))
	}

	var open *seenEvent // the first sign of an outage not recovered yet
	for i, se := range o.events {
		switch se.e.GetType() {
		case vspb.EventType_EVENT_TYPE_RECOVERY_STARTED, vspb.EventType_EVENT_TYPE_MEDIA_STALLED:
			if open == nil {
				open = &o.events[i]
			}
		case vspb.EventType_EVENT_TYPE_RECOVERED:
			open = nil
			r := se.e.GetRecovery()
			v.outages = append(v.outages, outage{at: se.at, step: stepName(r.GetStep()), outage: r.GetOutage().AsDuration()})
			if o.end.Sub(se.at) < recoveredWithin {
				continue // too late to judge
			}
			if packetsAt(o.samples, se.at.Add(recoveredWithin)) <= packetsAt(o.samples, se.at) {
				v.falseRecoveries++
				v.problems = append(v.problems, fmt.Errorf("%w: RECOVERED at %s (%s) was not followed by video within %v",
					errFalseRecovery, se.at.Format(clockLayout), stepName(r.GetStep()), recoveredWithin))
			}
		}
	}
	if open != nil {
		v.problems = append(v.problems, fmt.Errorf("%w: %s at %s had no RECOVERED after it",
			errUnrecovered, trimEnum(open.e.GetType().String(), "EVENT_TYPE_"), open.at.Format(clockLayout)))
	}
	return v
}

// packetsAt is the packet count of the last sample at or before t.
func packetsAt(ss []sample, t time.Time) int64 {
	var n int64
	for _, s := range ss {
		if s.at.After(t) {
			break
		}
		n = s.packets
	}
	return n
}

func stepName(s vspb.RecoveryStep) string { return trimEnum(s.String(), "RECOVERY_STEP_") }

// err is the verdict's problems as one error (nil when none), one line.
func (v verdict) err() error {
	if len(v.problems) == 0 {
		return nil
	}
	return problems(v.problems)
}

// problems is several errors said on one line.
type problems []error

func (p problems) Error() string {
	var msgs []string
	for _, e := range p {
		msgs = append(msgs, e.Error())
	}
	return strings.Join(msgs, "; ")
}

func (p problems) Unwrap() []error { return p }

// describe is the verdict in words, for the summary line: "first video
// after 312ms; outages: NEW_CLIENT_ID 2.1s; black 2.3s (gaps 2.3s)".
func (v verdict) describe() string {
	var b strings.Builder
	if v.firstVideo >= 0 {
		fmt.Fprintf(&b, "first video after %v", v.firstVideo.Round(time.Millisecond))
	} else {
		b.WriteString("no video")
	}
	if len(v.outages) > 0 {
		var os []string
		for _, o := range v.outages {
			os = append(os, fmt.Sprintf("%s %v", o.step, o.outage.Round(time.Millisecond)))
		}
		fmt.Fprintf(&b, "; outages: %s", strings.Join(os, ", "))
	}
	fmt.Fprintf(&b, "; black %v", v.black.Round(time.Millisecond))
	if len(v.gaps) > 0 {
		var gs []string
		for _, g := range v.gaps {
			gs = append(gs, g.Round(time.Millisecond).String())
		}
		fmt.Fprintf(&b, " (gaps %s)", strings.Join(gs, ", "))
	}
	return b.String()
}
