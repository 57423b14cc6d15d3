package sessionmgr_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/memstore"
)

// app is a scripted viewer app for the ladder tests: it follows the
// session's renegotiates (an ICE restart keeps its peer connection, a new
// peer connection gets a new id and certificate), applies the answers it is
// sent, and reports media: its video flows on a peer connection whose
// answer it applied, unless video is off (a path that carries nothing).
type app struct {
	t       *testing.T
	h       *harness
	id      sessionmgr.SessionID
	pc      uint32 // the current peer connection; 0 before the first
	applied uint32 // the peer connection whose answer was applied last
	packets uint64 // on pc
	seen    uint64 // events handled
	video   bool   // answered peer connections carry video
	evs     []sessionmgr.Event
	seq     uint64 // app sequence of the next message
}

// appOffer is the SDP offer of peer connection pc (its certificate is the
// peer connection's own); restart marks an ICE restart of it.
func appOffer(pc uint32, restart bool) string {
	kind := "initial"
	if restart {
		kind = "restart"
	}
	return fmt.Sprintf("v=0\r\ns=%s\r\na=fingerprint:sha-256 AP:P0:%02X\r\n", kind, pc)
}

func (a *app) send(msg sessionmgr.AppMessage) (sessionmgr.Session, error) {
	a.t.Helper()
	a.seq++
	msg.AppSeq = a.seq
	got, err := a.h.m.Send(a.t.Context(), a.id, msg)
	synctest.Wait()
	return got, err
}

func (a *app) mustSend(msg sessionmgr.AppMessage) sessionmgr.Session {
	a.t.Helper()
	got, err := a.send(msg)
	if err != nil {
		a.t.Fatalf("Send(%+v): %v", msg, err)
	}
	return got
}

// report sends a media report; grow adds packets first when video flows.
func (a *app) report(grow bool) {
	if grow && a.video && a.pc != 0 && a.applied == a.pc {
		a.packets += 15
	}
	a.mustSend(sessionmgr.AppMessage{Media: &sessionmgr.MediaReport{PeerConnection: a.pc, Packets: a.packets, Bytes: a.packets * 1200}})
}

// newPC builds a new peer connection and sends its offer.
func (a *app) newPC() {
	a.pc++
	a.packets = 0
	a.mustSend(sessionmgr.AppMessage{Offer: appOffer(a.pc, false)})
}

// follow handles the events since the last call, as a real app would,
// including those its own replies cause, and reports whether the session
// ended.
func (a *app) follow() (ended bool) {
	a.t.Helper()
	for {
		s, err := a.h.m.Get(a.t.Context(), a.id)
		if err != nil {
			a.t.Fatal(err)
		}
		if s.LastSeq <= a.seen || s.Terminal() {
			a.handle(s.LastSeq)
			return s.Terminal()
		}
		if a.handle(s.LastSeq) {
			return true
		}
	}
}

// handle handles the events up to last.
func (a *app) handle(last uint64) (ended bool) {
	a.t.Helper()
	if last <= a.seen {
		return false
	}
	var evs []sessionmgr.Event
	_ = a.h.m.Watch(a.t.Context(), a.id, a.seen, func(e sessionmgr.Event) error {
		evs = append(evs, e)
		if e.Seq >= last {
			return io.EOF
		}
		return nil
	})
	for _, e := range evs {
		a.seen = e.Seq
		a.evs = append(a.evs, e)
		switch e.Type {
		case sessionmgr.EventRenegotiate:
			if e.Renegotiate.Action == sessionmgr.RenegotiateICERestart {
				a.mustSend(sessionmgr.AppMessage{Offer: appOffer(a.pc, true)})
			} else {
				a.newPC()
			}
		case sessionmgr.EventAnswer:
			a.applied = a.pc
			a.mustSend(sessionmgr.AppMessage{StateReport: &sessionmgr.ConnState{ICE: sessionmgr.ICEConnected, Peer: sessionmgr.PeerConnected}})
		case sessionmgr.EventFailed, sessionmgr.EventClosed:
			return true
		}
	}
	return false
}

// run follows the session and reports media every second for d (fake
// time), or until the session ends.
func (a *app) run(d time.Duration) {
	a.t.Helper()
	end := time.Now().Add(d)
	next := time.Now()
	for time.Now().Before(end) {
		if a.follow() {
			return
		}
		if !time.Now().Before(next) {
			a.report(true)
			next = next.Add(time.Second)
		}
		time.Sleep(50 * time.Millisecond)
		synctest.Wait()
	}
	a.follow()
}

// connect joins, offers and runs until video flows.
func (a *app) connect() {
	a.t.Helper()
	if _, err := a.h.m.Attach(a.t.Context(), a.id); err != nil {
		a.t.Fatal(err)
	}
	synctest.Wait()
	a.newPC()
	a.run(3 * time.Second)
	if got, _ := a.h.m.Get(a.t.Context(), a.id); got.State != sessionmgr.StateConnected || !got.MediaFlowing {
		a.t.Fatalf("before the outage: %s, media flowing %v; want CONNECTED with video (timeline: %s)", got.State, got.MediaFlowing, evSummary(a.evs))
	}
}

// since returns the events after seq, of the given types (all if none).
func (a *app) since(seq uint64, types ...sessionmgr.EventType) []sessionmgr.Event {
	var out []sessionmgr.Event
	for _, e := range a.evs {
		if e.Seq > seq && (len(types) == 0 || slices.Contains(types, e.Type)) {
			out = append(out, e)
		}
	}
	return out
}

func evSummary(evs []sessionmgr.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\n  %3d %s %-20s %-10s %s", e.Seq, e.Time.Format("05.000"), e.Type, e.ClientID, e.Message)
	}
	return b.String()
}

func newApp(t *testing.T, h *harness, viewer string, opts sessionmgr.Options) *app {
	t.Helper()
	s, err := h.m.Create(t.Context(), sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "cam"}, ViewerID: viewer, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	return &app{t: t, h: h, id: s.ID, video: true}
}

// TestLadder: what each kind of master does to a recovery after a network
// change, step by step.
func TestLadder(t *testing.T) {
	d := sessionmgr.DefaultOptions()
	tests := []struct {
		name     string
		camera   camMode
		policy   sessionmgr.RecoveryPolicy
		video    bool // the app's answered peer connections carry video
		want     []sessionmgr.RecoveryStep
		wantAt   []time.Duration // each step's start after the network change
		wantEnd  sessionmgr.EventType
		wantID   string // clientId at the end
		wantText string // in the RECOVERED or FAILED message
	}{
		{
			name: "restart-capable: ICE restart", camera: camRestartCapable, video: true,
			want: []sessionmgr.RecoveryStep{sessionmgr.StepICERestart}, wantAt: []time.Duration{0},
			wantEnd: sessionmgr.EventRecovered, wantID: "v", wantText: "recovered by an ICE restart",
		},
		{
			name: "js-sample: new fingerprint, at once a new peer connection, same clientId", camera: camJSSample, video: true,
			want: []sessionmgr.RecoveryStep{sessionmgr.StepICERestart, sessionmgr.StepNewPeerConnection}, wantAt: []time.Duration{0, 0},
			wantEnd: sessionmgr.EventRecovered, wantID: "v", wantText: "recovered by a new peer connection with the same clientId",
		},
		{
			name: "c-sample: no answer, a new clientId after the ICE-restart timeout", camera: camCSample, video: true,
			want: []sessionmgr.RecoveryStep{sessionmgr.StepICERestart, sessionmgr.StepNewClientID}, wantAt: []time.Duration{0, d.ICERestartTimeout},
			wantEnd: sessionmgr.EventRecovered, wantID: "v-2", wantText: "recovered by a new clientId",
		},
		{
			name: "answers but no video: every step, then RECOVERY_FAILED", camera: camRestartCapable, video: false,
			want:    []sessionmgr.RecoveryStep{sessionmgr.StepICERestart, sessionmgr.StepNewPeerConnection, sessionmgr.StepNewClientID},
			wantAt:  []time.Duration{0, d.ICERestartTimeout, d.ICERestartTimeout + d.NewPeerConnectionTimeout},
			wantEnd: sessionmgr.EventFailed, wantID: "v-2", wantText: "video did not flow",
		},
		{
			name: "ICE restart only: a replaced connection fails", camera: camJSSample, policy: sessionmgr.RecoveryICERestartOnly, video: true,
			want: []sessionmgr.RecoveryStep{sessionmgr.StepICERestart}, wantAt: []time.Duration{0},
			wantEnd: sessionmgr.EventFailed, wantID: "v", wantText: "the camera replaced its connection",
		},
		{
			name: "ICE restart only: silence fails at the timeout", camera: camCSample, policy: sessionmgr.RecoveryICERestartOnly, video: true,
			want: []sessionmgr.RecoveryStep{sessionmgr.StepICERestart}, wantAt: []time.Duration{0},
			wantEnd: sessionmgr.EventFailed, wantID: "v", wantText: "did not answer the ICE restart",
		},
		{
			name: "full reconnect only", camera: camJSSample, policy: sessionmgr.RecoveryFullReconnect, video: true,
			want: []sessionmgr.RecoveryStep{sessionmgr.StepNewClientID}, wantAt: []time.Duration{0},
			wantEnd: sessionmgr.EventRecovered, wantID: "v-2", wantText: "recovered by a new clientId",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, &fakeCamera{mode: tt.camera})
				a := newApp(t, h, "v", sessionmgr.Options{Recovery: tt.policy})
				a.connect()
				mark := a.seen
				a.video = tt.video
				changed := time.Now()
				desc := "wifi->lte"
				a.mustSend(sessionmgr.AppMessage{NetworkChanged: &desc})
				// Long enough for the last step's wait for video after its
				// answer (the answer timeout, 30 s).
				a.run(45 * time.Second)

				tl := evSummary(a.since(mark))
				t.Logf("timeline after the network change:%s", tl)
				var steps []sessionmgr.RecoveryStep
				for i, e := range a.since(mark, sessionmgr.EventRecoveryStarted) {
					steps = append(steps, e.Recovery.Step)
					if e.Recovery.Learned {
						t.Errorf("step %s marked learned on a channel with no history", e.Recovery.Step)
					}
					if i < len(tt.wantAt) {
						if at := e.Time.Sub(changed); at != tt.wantAt[i] {
							t.Errorf("step %s started %v after the network change, want %v", e.Recovery.Step, at, tt.wantAt[i])
						}
					}
				}
				if !slices.Equal(steps, tt.want) {
					t.Errorf("steps %v, want %v; timeline:%s", steps, tt.want, tl)
				}
				ends := a.since(mark, sessionmgr.EventRecovered, sessionmgr.EventFailed)
				if len(ends) != 1 || ends[0].Type != tt.wantEnd {
					t.Fatalf("outcome events %v, want one %s; timeline:%s", ends, tt.wantEnd, tl)
				}
				end := ends[0]
				if !strings.Contains(end.Message, tt.wantText) {
					t.Errorf("%s message %q lacks %q", end.Type, end.Message, tt.wantText)
				}
				if end.ClientID != tt.wantID {
					t.Errorf("clientId at the end %s, want %s", end.ClientID, tt.wantID)
				}
				got, err := h.m.Get(t.Context(), a.id)
				if err != nil {
					t.Fatal(err)
				}
				if end.Type == sessionmgr.EventRecovered {
					if end.Recovery == nil || end.Recovery.Step != tt.want[len(tt.want)-1] {
						t.Errorf("RECOVERED carries %+v, want step %s", end.Recovery, tt.want[len(tt.want)-1])
					}
					if got.State != sessionmgr.StateConnected || !got.MediaFlowing {
						t.Errorf("after RECOVERED: %s, media flowing %v; want CONNECTED with video", got.State, got.MediaFlowing)
					}
				} else if got.State != sessionmgr.StateFailed || got.Failure == nil || got.Failure.Reason != sessionmgr.FailureRecoveryFailed {
					t.Errorf("after FAILED: %s %+v, want FAILED RECOVERY_FAILED", got.State, got.Failure)
				}
				// No answer from a replaced connection reaches the app, and
				// the session never looks recovered before video flows.
				for _, e := range a.since(mark) {
					if e.Type == sessionmgr.EventStateChanged && e.State == sessionmgr.StateConnected && end.Type != sessionmgr.EventRecovered {
						t.Errorf("CONNECTED (seq %d) without video flowing again", e.Seq)
					}
				}
				if tt.camera == camJSSample && tt.want[0] == sessionmgr.StepICERestart {
					started := a.since(mark, sessionmgr.EventRecoveryStarted)
					climbed := end.Seq // the ICE restart's end
					if len(started) > 1 {
						climbed = started[1].Seq
					}
					for _, e := range a.since(mark, sessionmgr.EventAnswer, sessionmgr.EventRemoteCandidate) {
						if e.Seq < climbed {
							t.Errorf("%s from the replaced connection was delivered (seq %d)", e.Type, e.Seq)
						}
					}
					if n := len(a.since(mark, sessionmgr.EventStaleAnswerDropped)); n != 1 {
						t.Errorf("%d STALE_ANSWER_DROPPED, want 1 (the restart's answer from the replaced connection)", n)
					}
				}
			})
		})
	}
}

// TestStallStartsRecovery: video that stands still on a connected peer
// connection is an outage, measured from its last progress.
func TestStallStartsRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &fakeCamera{mode: camRestartCapable})
		a := newApp(t, h, "st", sessionmgr.Options{})
		a.connect()
		mark := a.seen
		a.report(true)
		lastProgress := time.Now()
		// The path dies without a word from ICE: the counters stand still.
		a.video = false
		for range 5 {
			time.Sleep(time.Second)
			a.report(false)
		}
		a.follow()
		stalls := a.since(mark, sessionmgr.EventMediaStalled)
		if len(stalls) != 1 {
			t.Fatalf("%d MEDIA_STALLED, want 1; timeline:%s", len(stalls), evSummary(a.since(mark)))
		}
		stall := stalls[0]
		if at := stall.Time.Sub(lastProgress); at != sessionmgr.DefaultOptions().MediaStallTimeout {
			t.Errorf("MEDIA_STALLED %v after the last progress, want media_stall_timeout %v", at, sessionmgr.DefaultOptions().MediaStallTimeout)
		}
		if stall.Media == nil || stall.Media.Packets != a.packets {
			t.Errorf("MEDIA_STALLED carries %+v, want the last report with progress (%d packets)", stall.Media, a.packets)
		}
		if got, _ := h.m.Get(t.Context(), a.id); got.State != sessionmgr.StateRecovering || got.MediaFlowing {
			t.Errorf("after the stall: %s, media flowing %v; want RECOVERING without video", got.State, got.MediaFlowing)
		}
		a.video = true // the restart finds a path
		a.run(3 * time.Second)
		recs := a.since(mark, sessionmgr.EventRecovered)
		if len(recs) != 1 {
			t.Fatalf("%d RECOVERED, want 1; timeline:%s", len(recs), evSummary(a.since(mark)))
		}
		if want := recs[0].Time.Sub(lastProgress); recs[0].Recovery.Outage != want {
			t.Errorf("outage %v, want %v (from the last progress to video again)", recs[0].Recovery.Outage, want)
		}
	})
}

// TestSilenceIsNotAStall: when the app's reports stop (its control stream
// broke, as in a 3 s Wi-Fi fade that video survives), the stall timer
// running out starts nothing; the next report decides. Found on real
// links: every fade ended in a needless recovery.
func TestSilenceIsNotAStall(t *testing.T) {
	for _, tt := range []struct {
		name      string
		videoBack bool
	}{{"video came back", true}, {"video did not come back", false}} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, &fakeCamera{mode: camRestartCapable})
				a := newApp(t, h, "si", sessionmgr.Options{})
				a.connect()
				mark := a.seen
				a.report(true)
				lastProgress := time.Now()
				stall := sessionmgr.DefaultOptions().MediaStallTimeout
				time.Sleep(stall + 2*time.Second) // no report at all
				a.follow()
				if n := len(a.since(mark, sessionmgr.EventMediaStalled, sessionmgr.EventRecoveryStarted)); n != 0 {
					t.Fatalf("%d stall or recovery events while no reports arrived, want 0; timeline:%s", n, evSummary(a.since(mark)))
				}
				a.video = tt.videoBack
				a.report(true)
				a.follow()
				stalls := a.since(mark, sessionmgr.EventMediaStalled)
				if tt.videoBack {
					if len(stalls) != 0 {
						t.Errorf("MEDIA_STALLED after a report with video; timeline:%s", evSummary(a.since(mark)))
					}
					return
				}
				if len(stalls) != 1 {
					t.Fatalf("%d MEDIA_STALLED after a flat report, want 1; timeline:%s", len(stalls), evSummary(a.since(mark)))
				}
				if got, _ := h.m.Get(t.Context(), a.id); got.State != sessionmgr.StateRecovering {
					t.Errorf("after the flat report: %s, want RECOVERING", got.State)
				}
				if !strings.Contains(stalls[0].Message, (stall + 2*time.Second).String()) {
					t.Errorf("MEDIA_STALLED message %q does not count from the last progress (%v ago)", stalls[0].Message, time.Since(lastProgress))
				}
			})
		})
	}
}

// TestFadeResendThenVideo: a fade's resume resends reports queued before
// video came back (flat among themselves); the first fresh report shows the
// video. No stall: found on real links, where a 3 s fade started a
// recovery after video was back.
func TestFadeResendThenVideo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &fakeCamera{mode: camRestartCapable})
		a := newApp(t, h, "fr", sessionmgr.Options{})
		a.connect()
		mark := a.seen
		a.report(true)
		a.packets += 8                                                                   // before the fade, reported late
		time.Sleep(sessionmgr.DefaultOptions().MediaStallTimeout + 500*time.Millisecond) // the fade: silence
		a.report(false)                                                                  // resent: undated growth
		a.report(false)                                                                  // resent with it: the same counters
		time.Sleep(time.Second)
		a.report(true) // fresh: video is back
		a.follow()
		if n := len(a.since(mark, sessionmgr.EventMediaStalled, sessionmgr.EventRecoveryStarted)); n != 0 {
			t.Fatalf("%d stall or recovery events after a fade that video survived; timeline:%s", n, evSummary(a.since(mark)))
		}
	})
}

// TestResentGrowthIsUndated: after a silence (the app's stream died and it
// re-dialed), its resent reports show growth from before the outage; dated
// at their arrival, that growth hid the outage for another
// media_stall_timeout (9.5 s to video with c-sample and watching off, on
// real links). The stall counts from the last dated progress.
func TestResentGrowthIsUndated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &fakeCamera{mode: camRestartCapable})
		a := newApp(t, h, "rg", sessionmgr.Options{})
		a.connect()
		mark := a.seen
		a.report(true)
		lastProgress := time.Now()
		a.packets += 8 // video that arrived before the outage, reported too late
		a.video = false
		time.Sleep(2500 * time.Millisecond) // the stream is dead: no reports
		a.report(false)                     // the resend: growth from before the outage
		a.report(false)                     // resent with it: proves nothing
		for range 2 {
			time.Sleep(time.Second)
			a.report(false)
		}
		a.follow()
		stalls := a.since(mark, sessionmgr.EventMediaStalled)
		if len(stalls) != 1 {
			t.Fatalf("%d MEDIA_STALLED, want 1; timeline:%s", len(stalls), evSummary(a.since(mark)))
		}
		if at := stalls[0].Time.Sub(lastProgress); at != sessionmgr.DefaultOptions().MediaStallTimeout {
			t.Errorf("MEDIA_STALLED %v after the last dated progress, want %v", at, sessionmgr.DefaultOptions().MediaStallTimeout)
		}
	})
}

// TestRecoveredNeedsVideo: "connected" reports, from the old peer
// connection or after a restart's answer, never end a recovery; only
// growing counters after the step's answer do.
func TestRecoveredNeedsVideo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &fakeCamera{mode: camJSSample})
		a := newApp(t, h, "nv", sessionmgr.Options{})
		a.connect()
		mark := a.seen
		desc := "wifi->lte"
		a.mustSend(sessionmgr.AppMessage{NetworkChanged: &desc})
		// The old peer connection's video still trickles in, and ICE says
		// connected: the ICE restart was not answered yet, so neither
		// counts.
		a.packets += 10
		a.mustSend(sessionmgr.AppMessage{Media: &sessionmgr.MediaReport{PeerConnection: a.pc, Packets: a.packets}})
		a.mustSend(sessionmgr.AppMessage{StateReport: &sessionmgr.ConnState{ICE: sessionmgr.ICEConnected, Peer: sessionmgr.PeerConnected}})
		if got, _ := h.m.Get(t.Context(), a.id); got.State != sessionmgr.StateRecovering {
			t.Fatalf("after connected and old video: %s, want RECOVERING", got.State)
		}
		// The restart offer; the js-sample answers from a new connection;
		// a new peer connection, its offer, its answer, "connected".
		a.follow()
		if a.pc != 2 || a.applied != 2 {
			t.Fatalf("the app is on peer connection %d with answer %d applied, want 2 and 2; timeline:%s", a.pc, a.applied, evSummary(a.since(mark)))
		}
		// Video on the old peer connection, after the new one's answer:
		// not the new peer connection's video.
		a.mustSend(sessionmgr.AppMessage{Media: &sessionmgr.MediaReport{PeerConnection: 1, Packets: 500}})
		a.follow()
		if n := len(a.since(mark, sessionmgr.EventRecovered)); n != 0 {
			t.Fatalf("RECOVERED without video on the new peer connection; timeline:%s", evSummary(a.since(mark)))
		}
		a.report(true)
		a.follow()
		if n := len(a.since(mark, sessionmgr.EventRecovered)); n != 1 {
			t.Errorf("%d RECOVERED after video on the new peer connection, want 1; timeline:%s", n, evSummary(a.since(mark)))
		}
	})
}

// recObserver records what the Observer is told about recoveries and video.
type recObserver struct {
	mu         sync.Mutex
	steps      []string // "<step>/<outcome>"
	outages    []string // "<step>/<outage>"
	stalls     int
	firstVideo []time.Duration
}

func (o *recObserver) SessionState(sessionmgr.State, sessionmgr.State) {}
func (o *recObserver) Attempt()                                        {}
func (o *recObserver) Answer(time.Duration)                            {}
func (o *recObserver) AnswerTimeout(bool)                              {}
func (o *recObserver) ClientID(time.Duration, bool, error)             {}
func (o *recObserver) Failure(sessionmgr.FailureReason)                {}
func (o *recObserver) RecoveryStep(s sessionmgr.RecoveryStep, out sessionmgr.StepOutcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.steps = append(o.steps, s.String()+"/"+out.String())
}
func (o *recObserver) Outage(s sessionmgr.RecoveryStep, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.outages = append(o.outages, fmt.Sprintf("%s/%v", s, d))
}
func (o *recObserver) MediaStall() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stalls++
}
func (o *recObserver) FirstVideo(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.firstVideo = append(o.firstVideo, d)
}

// TestLadderObserved: the metrics see each step's outcome, the outage
// and the first video.
func TestLadderObserved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		obs := &recObserver{}
		h := newHarness(t, &fakeCamera{mode: camCSample}, sessionmgr.WithObserver(obs))
		a := newApp(t, h, "ob", sessionmgr.Options{})
		if _, err := h.m.Attach(t.Context(), a.id); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		a.newPC()
		a.follow()
		time.Sleep(700 * time.Millisecond)
		a.report(true)
		a.run(2 * time.Second)
		time.Sleep(300 * time.Millisecond) // between two reports
		desc := "wifi->lte"
		a.mustSend(sessionmgr.AppMessage{NetworkChanged: &desc})
		a.run(5 * time.Second)
		obs.mu.Lock()
		defer obs.mu.Unlock()
		if fmt.Sprint(obs.firstVideo) != "[700ms]" {
			t.Errorf("first video %v, want [700ms] (join to the first report showing video)", obs.firstVideo)
		}
		if got, want := fmt.Sprint(obs.steps), "[ICE_RESTART/no_answer NEW_CLIENT_ID/recovered]"; got != want {
			t.Errorf("steps %s, want %s", got, want)
		}
		// The network change at 3.0s; the ICE restart ends at 4.5s; the app
		// reports every second from the change: video again at 5.0s.
		if got, want := fmt.Sprint(obs.outages), "[NEW_CLIENT_ID/2s]"; got != want {
			t.Errorf("outages %s, want %s; timeline:%s", got, want, evSummary(a.evs))
		}
	})
}

// writeCounter is a memstore that counts the writes a session makes.
type writeCounter struct {
	*memstore.Store
	mu     sync.Mutex
	writes int
}

func (w *writeCounter) Put(ctx context.Context, s sessionmgr.Session) error {
	w.count()
	return w.Store.Put(ctx, s)
}

func (w *writeCounter) Append(ctx context.Context, id sessionmgr.SessionID, epoch uint64, e sessionmgr.Event) error {
	w.count()
	return w.Store.Append(ctx, id, epoch, e)
}

func (w *writeCounter) Save(ctx context.Context, s sessionmgr.Session, events []sessionmgr.Event) error {
	w.count()
	return w.Store.Save(ctx, s, events)
}

func (w *writeCounter) count() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
}

func (w *writeCounter) n() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes
}

// TestMediaReportsWriteNothing: reports that cause no milestone add no
// event and write nothing, sequenced or not; they are acknowledged in
// memory.
func TestMediaReportsWriteNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &writeCounter{Store: memstore.New()}
		h := newHarnessStore(t, &fakeCamera{mode: camRestartCapable}, st)
		a := newApp(t, h, "mw", sessionmgr.Options{})
		a.connect()
		before, last := st.n(), a.seen
		for range 30 {
			time.Sleep(time.Second)
			a.report(true)
		}
		got, err := h.m.Get(t.Context(), a.id)
		if err != nil {
			t.Fatal(err)
		}
		if n := st.n() - before; n != 0 || got.LastSeq != last {
			t.Errorf("30 media reports: %d store writes, events %d..%d; want none", n, last, got.LastSeq)
		}
		// The acknowledgement moved on in memory (the next reply shows it).
		s, err := a.send(sessionmgr.AppMessage{Media: &sessionmgr.MediaReport{PeerConnection: a.pc, Packets: a.packets}})
		if err != nil || s.AckedAppSeq != a.seq {
			t.Errorf("ack after the reports %d, %v; want %d", s.AckedAppSeq, err, a.seq)
		}
	})
}
