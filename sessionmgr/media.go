package sessionmgr

import (
	"fmt"
	"time"
)

// Media truth: the app's media reports are the service's only proof that
// the user sees video. CONNECTED needs the connection; MEDIA_FLOWING and
// RECOVERED need counters that grow.
//
// A report is cheap: it adds no event and writes nothing unless it causes
// a milestone (MEDIA_FLOWING, RECOVERED); at a report a second per
// session it costs one actor step and no store call.

// mediaState is what the app's media reports showed (actor goroutine only).
type mediaState struct {
	// pc is the peer connection of the last report.
	pc uint32
	// last is the last report on pc; known says whether it is (false
	// after a takeover, until a first report on the old peer connection
	// gives the counters to grow from).
	last  MediaReport
	known bool
	// progress is when pc's counters last grew, and progressed the report
	// that showed it.
	progress   time.Time
	progressed MediaReport
	// received is when the last report arrived, of any kind.
	received time.Time
	// stallPending: the stall timer ran out while no reports arrived. A
	// missing report is not a stalled video (the control stream may be
	// what broke, as in a short Wi-Fi fade that video survives), and a
	// recovery needs that stream anyway: the next report decides.
	stallPending bool
	// undatedAt is when the first report after a silence showed growth
	// whose own time is unknown (resent reports after a resume carry growth
	// from before the outage); a later report says whether video flows now.
	// Zero: no undated growth.
	undatedAt time.Time
}

// reportSilence is how long without any media report (the app sends one a
// second) means the control stream, not the video, went quiet.
const reportSilence = 1500 * time.Millisecond

// reportApart is how far apart two reports must arrive for flat counters
// to prove video stands still: a resume's resent reports arrive together,
// all with the counters of when the app last queued one.
const reportApart = 700 * time.Millisecond

// onMedia takes one media report: video progress is packets received
// growing on a peer connection. A new peer connection's counters start
// from zero.
func (a *actor) onMedia(r MediaReport) {
	m := &a.media
	now := a.m.now()
	silent := !m.received.IsZero() && now.Sub(m.received) >= reportSilence
	m.received = now
	if r.PeerConnection != m.pc {
		m.pc, m.last, m.known = r.PeerConnection, MediaReport{PeerConnection: r.PeerConnection}, true
		m.undatedAt, silent = time.Time{}, false // a new peer connection's growth is new
	}
	if !m.known {
		m.last, m.known = r, true
		return
	}
	grew := r.PeerConnection != 0 && r.Packets > m.last.Packets
	m.last = r
	if grew && silent && (a.rec.step == StepUnknown || a.rec.step == StepICERestart) {
		// Growth on the same peer connection across a silence: it may be
		// from before an outage (the app resends what the service missed)
		// or video that came back. Dated at receipt it would hide an outage
		// for another media_stall_timeout; the next report decides.
		m.undatedAt = now
		return
	}
	if !grew {
		if !m.undatedAt.IsZero() && now.Sub(m.undatedAt) < reportApart {
			return // resent with the undated one: it proves nothing yet
		}
		m.undatedAt = time.Time{} // what grew across the silence is old: progress stays
		if m.stallPending {
			// Reports are back and the video is not: the stall stands.
			m.stallPending = false
			a.stalled()
		}
		return // flat: the stall timer, if video flowed, keeps running
	}
	m.stallPending, m.undatedAt = false, time.Time{}
	m.progress, m.progressed = now, r
	a.onVideo(r)
}

// onVideo acts on video progress on r's peer connection.
func (a *actor) onVideo(r MediaReport) {
	if a.rec.step != StepUnknown {
		if !a.rec.counts(r.PeerConnection) {
			return // not the current step's video (yet)
		}
		a.videoFlows(r, "video flows again")
		a.recovered()
		return
	}
	switch a.s.State {
	case StateConnecting, StateConnected:
	default:
		return // no answered peer connection: nothing to judge
	}
	// Video flows: whatever looked like an outage healed by itself.
	a.outageSign = time.Time{}
	a.discT.stop()
	a.videoFlows(r, "video flows")
}

// videoFlows records video flowing on r's peer connection: CONNECTED (a
// connected report may still be on its way), MEDIA_FLOWING the first time
// on this peer connection, and the stall timer.
func (a *actor) videoFlows(r MediaReport, why string) {
	if _, err := a.transition(input{kind: inMediaFlowing}, why); err != nil {
		return
	}
	if r.PeerConnection != a.s.MediaPC || !a.s.MediaFlowing {
		first := r.PeerConnection != a.s.MediaPC
		a.s.MediaPC, a.s.MediaFlowing = r.PeerConnection, true
		a.dirty = true
		if first {
			rr := r
			msg := fmt.Sprintf("video flows on the app's peer connection %d (%d packets)", r.PeerConnection, r.Packets)
			if !a.sawVideo && !a.joinedAt.IsZero() {
				d := a.m.now().Sub(a.joinedAt)
				a.m.obs.FirstVideo(d)
				msg += fmt.Sprintf(": first video %v after the app joined", d.Round(time.Millisecond))
			}
			a.emit(Event{Type: EventMediaFlowing, Media: &rr, Message: msg})
		}
	}
	a.sawVideo = true
	a.stallT.start(a.s.Options.MediaStallTimeout)
}

// setMediaFlowing records whether video flows (a milestone: the record is
// written with the event that changed it).
func (a *actor) setMediaFlowing(v bool) {
	if a.s.MediaFlowing != v {
		a.s.MediaFlowing = v
		a.dirty = true
	}
}

// onStall: no video progress for media_stall_timeout on a connected peer
// connection: an outage, counted from the last progress, when the app's
// reports kept arriving flat; when none arrived lately the next report
// decides (stallPending).
func (a *actor) onStall() {
	if a.s.State != StateConnected || a.rec.step != StepUnknown {
		return
	}
	if !a.media.undatedAt.IsZero() || a.m.now().Sub(a.media.received) >= reportSilence {
		a.media.stallPending = true
		return
	}
	a.stalled()
}

// stalled starts the recovery of a stall: media_stall_timeout without
// video progress, while reports arrived.
func (a *actor) stalled() {
	if a.s.State != StateConnected || a.rec.step != StepUnknown {
		return
	}
	o := a.s.Options
	a.m.obs.MediaStall()
	a.setMediaFlowing(false)
	last := a.media.progressed
	msg := fmt.Sprintf("video stood still for %v on the app's peer connection %d", o.MediaStallTimeout, last.PeerConnection)
	if !a.media.progress.IsZero() {
		msg += fmt.Sprintf(" (last progress %v ago, at %d packets)", a.m.now().Sub(a.media.progress).Round(time.Millisecond), last.Packets)
		a.noteSign(a.media.progress)
	}
	a.emit(Event{Type: EventMediaStalled, Media: &last, Message: msg})
	a.recover(fmt.Sprintf("video stalled for %v", o.MediaStallTimeout))
}

// noteSign records a sign of an outage at t; the earliest counts.
func (a *actor) noteSign(t time.Time) {
	if a.outageSign.IsZero() || t.Before(a.outageSign) {
		a.outageSign = t
	}
}
