package service_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/acme/viewersession/internal/stacktest"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/acme/viewersession/internal/switchnet"
	"github.com/acme/viewersession/kvsemu/camera"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/viewerclient"
)

var modes = []struct {
	name string
	mode viewerclient.Mode
}{
	{"connect", viewerclient.ModeConnect},
	{"signal", viewerclient.ModeSignal},
}

// app is a thin client (a real pion peer) running against the stack.
type app struct {
	c    *viewerclient.Client
	done chan error
}

func startApp(t *testing.T, s *stacktest.Stack, cs *vspb.CreateSessionResponse, mode viewerclient.Mode, net *switchnet.SwitchNet) *app {
	t.Helper()
	if net == nil { // loopback only, the machine's network unwatched
		var err error
		if net, err = switchnet.New("127.0.0.1"); err != nil {
			t.Fatal(err)
		}
	}
	c, err := viewerclient.New(viewerclient.Config{
		Conn:        s.Conn,
		Session:     cs.GetSession().GetName(),
		Token:       cs.GetSessionToken(),
		Mode:        mode,
		Net:         net,
		IceServers:  cs.GetSession().GetIceServers(),
		ICETimeouts: viewerclient.ICETimeouts{Disconnected: time.Second, Failed: 2 * time.Second, Keepalive: 250 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &app{c: c, done: make(chan error, 1)}
	go func() { a.done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-a.done:
		case <-time.After(20 * time.Second):
			t.Errorf("thin client did not stop")
		}
	})
	return a
}

func (a *app) wait(t *testing.T, timeout time.Duration, what string, match func(*vspb.SessionEvent) bool) *vspb.SessionEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	e, err := a.c.WaitEvent(ctx, match)
	if err != nil {
		t.Fatalf("waiting for %s: %v (timeline: %s)", what, err, summary(a.c.Events()))
	}
	return e
}

func (a *app) rtp(t *testing.T, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := a.c.WaitRTP(ctx, n); err != nil {
		t.Fatalf("waiting for %d RTP packets: %v (have %d; timeline: %s)", n, err, a.c.Stats().PacketsReceived, summary(a.c.Events()))
	}
}

func connected(e *vspb.SessionEvent) bool {
	return e.GetState() == vspb.SessionState_SESSION_STATE_CONNECTED
}

// summary is a timeline in one line: TYPE or ->STATE, with attempt.
func summary(evs []*vspb.SessionEvent) string {
	out := ""
	for _, e := range evs {
		out += " " + shortType(e)
	}
	return out
}

func shortType(e *vspb.SessionEvent) string {
	if e.GetType() == vspb.EventType_EVENT_TYPE_STATE_CHANGED {
		return "->" + trimPrefix(e.GetState().String(), "SESSION_STATE_")
	}
	return trimPrefix(e.GetType().String(), "EVENT_TYPE_")
}

func trimPrefix(s, p string) string {
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// milestones drops the events whose number depends on ICE timing (camera
// candidates, the app's state reports, ICE refreshes).
func milestones(evs []*vspb.SessionEvent) []string {
	var out []string
	for _, e := range evs {
		switch e.GetType() {
		case vspb.EventType_EVENT_TYPE_REMOTE_CANDIDATE, vspb.EventType_EVENT_TYPE_CONNECTION_STATE, vspb.EventType_EVENT_TYPE_ICE_SERVERS_REFRESHED:
			continue
		}
		out = append(out, shortType(e))
	}
	return out
}

// Acceptance 1 (and 10): the happy path, in both modes, on memory and on
// Redis (sessions, timelines and clientIds shared through a real Redis).
func TestE2EHappyPath(t *testing.T) {
	type variant struct {
		name  string
		mode  viewerclient.Mode
		redis bool
	}
	var variants []variant
	for _, m := range modes {
		variants = append(variants, variant{m.name, m.mode, false})
	}
	variants = append(variants, variant{"connect-redis", viewerclient.ModeConnect, true})
	for _, m := range variants {
		t.Run(m.name, func(t *testing.T) {
			s := stacktest.Start(t, stacktest.Options{Redis: m.redis})
			cs := s.Create(t, "happy-"+m.name, nil)
			a := startApp(t, s, cs, m.mode, nil)
			a.wait(t, 20*time.Second, "CONNECTED", connected)
			a.rtp(t, 30)
			a.wait(t, 10*time.Second, "MEDIA_FLOWING", func(e *vspb.SessionEvent) bool { return e.GetType() == vspb.EventType_EVENT_TYPE_MEDIA_FLOWING })

			closed, err := s.API.CloseSession(stacktest.Backend(t.Context()), &vspb.CloseSessionRequest{Name: cs.GetSession().GetName()})
			if err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-a.done:
				a.done <- err // for Cleanup
				if err != nil {
					t.Fatalf("thin client Run = %v after CloseSession, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("thin client still running after CloseSession")
			}
			want := []string{
				"CREATED", "CLIENT_ID_ALLOCATED", "APP_ATTACHED", "->SIGNALING", "SIGNALING_CONNECTED", "->AWAITING_OFFER",
				"->AWAITING_ANSWER", "OFFER_SENT", "->CONNECTING", "ANSWER", "->CONNECTED", "MEDIA_FLOWING", "CLOSED",
			}
			got := milestones(a.c.Events())
			if !slices.Equal(got, want) {
				t.Errorf("timeline milestones =\n %v\nwant\n %v", got, want)
			}
			st := a.c.Stats()
			if st.SequenceGaps != 0 || st.LastSequence != closed.GetSession().GetLastSequence() {
				t.Errorf("client saw up to seq %d with %d gaps; the session ended at %d", st.LastSequence, st.SequenceGaps, closed.GetSession().GetLastSequence())
			}
			t.Logf("%s: %d RTP packets, %.1f fps, clientId %s", m.name, st.PacketsReceived, st.FramesPerSecond, cs.GetSession().GetClientId())
		})
	}
}

// Acceptance 2 (and 10): the camera never answers, with a real peer.
func TestE2ENoAnswerThinClient(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s := stacktest.Start(t, stacktest.Options{})
			if err := s.Emu.SetCameraFault(s.ARN, camera.Fault{NoAnswer: true}); err != nil {
				t.Fatal(err)
			}
			const at, rd = time.Second, 400 * time.Millisecond
			cs := s.Create(t, "silent-"+m.name, &vspb.SessionOptions{AnswerTimeout: durationpb.New(at), RetryDelay: durationpb.New(rd)})
			a := startApp(t, s, cs, m.mode, nil)
			var err error
			select {
			case err = <-a.done:
				a.done <- err
			case <-time.After(20 * time.Second):
				t.Fatal("thin client still running after 20s")
			}
			var fe *viewerclient.FailedError
			if !errors.As(err, &fe) || fe.Reason() != vspb.FailureReason_FAILURE_REASON_ANSWER_TIMEOUT || status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("Run = %v, want FAILED ANSWER_TIMEOUT (DEADLINE_EXCEEDED)", err)
			}
			var ids []string
			var times []time.Time
			for _, r := range s.Emu.Messages(s.ARN) {
				if r.Type == "SDP_OFFER" && r.From == "viewer" {
					ids = append(ids, r.ClientID)
					times = append(times, r.Time)
				}
			}
			if len(ids) != 2 || ids[0] == ids[1] {
				t.Fatalf("offers at the emulator from %v, want 2 distinct clientIds", ids)
			}
			if d := times[1].Sub(times[0].Add(at)) - rd; d < -50*time.Millisecond || d > 50*time.Millisecond {
				t.Errorf("second offer %v after the first timeout, want %v within 50ms", times[1].Sub(times[0].Add(at)), rd)
			}
			if n := a.c.Stats().OffersSent; n != 1 {
				t.Errorf("the app sent %d offers, want 1 (the retry is transparent)", n)
			}
		})
	}
}

// Acceptance 3: the camera answers only from the 2nd offer.
func TestE2EAnswerFromSecondOffer(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	if err := s.Emu.SetCameraFault(s.ARN, camera.Fault{AnswerFromOffer: 2}); err != nil {
		t.Fatal(err)
	}
	cs := s.Create(t, "second", &vspb.SessionOptions{AnswerTimeout: durationpb.New(time.Second), RetryDelay: durationpb.New(300 * time.Millisecond)})
	a := startApp(t, s, cs, viewerclient.ModeConnect, nil)
	e := a.wait(t, 20*time.Second, "CONNECTED", connected)
	if e.GetAttempt() != 2 || e.GetClientId() == cs.GetSession().GetClientId() {
		t.Errorf("CONNECTED on attempt %d with %s, want attempt 2 with a new clientId (first was %s)", e.GetAttempt(), e.GetClientId(), cs.GetSession().GetClientId())
	}
	if n := a.c.Stats().OffersSent; n != 1 {
		t.Errorf("the app sent %d offers, want 1", n)
	}
	a.rtp(t, 20)
}

// Acceptance 4: an answer for attempt 1 arriving after the retry began is
// dropped, and attempt 2 wins.
func TestE2ELateAnswerDropped(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	const at = time.Second
	if err := s.Emu.SetCameraFault(s.ARN, camera.Fault{AnswerDelay: at + 700*time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	cs := s.Create(t, "late", &vspb.SessionOptions{AnswerTimeout: durationpb.New(at), RetryDelay: durationpb.New(200 * time.Millisecond)})
	first := cs.GetSession().GetClientId()
	a := startApp(t, s, cs, viewerclient.ModeConnect, nil)
	a.wait(t, 20*time.Second, "RETRY_SCHEDULED", func(e *vspb.SessionEvent) bool { return e.GetType() == vspb.EventType_EVENT_TYPE_RETRY_SCHEDULED })
	if err := s.Emu.SetCameraFault(s.ARN, camera.Fault{}); err != nil { // attempt 2 is answered at once
		t.Fatal(err)
	}
	e := a.wait(t, 20*time.Second, "CONNECTED", connected)
	if e.GetAttempt() != 2 {
		t.Errorf("CONNECTED on attempt %d, want 2", e.GetAttempt())
	}
	var answer *vspb.SessionEvent
	for _, ev := range a.c.Events() {
		if ev.GetType() == vspb.EventType_EVENT_TYPE_ANSWER {
			if answer != nil {
				t.Errorf("two answers on the timeline (seq %d and %d)", answer.GetSequence(), ev.GetSequence())
			}
			answer = ev
		}
	}
	if answer == nil || answer.GetClientId() == first {
		t.Fatalf("answer event %v, want one for attempt 2's clientId", answer)
	}
	// The late answer for attempt 1 did leave the camera, and nobody got it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var late []bool
		for _, r := range s.Emu.Messages(s.ARN) {
			if r.Type == "SDP_ANSWER" && r.ClientID == first {
				late = append(late, r.Delivered)
			}
		}
		if len(late) > 0 {
			if slices.Contains(late, true) {
				t.Errorf("attempt 1's late answer was delivered to %s", first)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the camera never sent attempt 1's late answer: the test proves nothing")
		}
		time.Sleep(50 * time.Millisecond) // polling the emulator (another component's clock)
	}
	a.rtp(t, 20)
}

// Acceptance 6 (and 10): a network change, with each master's behaviour:
// the ladder step that brings video back, and RECOVERED only with video.
func TestE2ENetworkChange(t *testing.T) {
	tests := []struct {
		camera       camera.Mode
		wantSameID   bool
		wantRestarts int
		wantNewPCs   int
		wantStep     vspb.RecoveryStep
	}{
		{camera.RestartCapable, true, 1, 0, vspb.RecoveryStep_RECOVERY_STEP_ICE_RESTART},
		{camera.JSSample, true, 1, 1, vspb.RecoveryStep_RECOVERY_STEP_NEW_PEER_CONNECTION},
		{camera.CSample, false, 1, 1, vspb.RecoveryStep_RECOVERY_STEP_NEW_CLIENT_ID},
	}
	for _, m := range modes {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/%s", m.name, tt.camera), func(t *testing.T) {
				s := stacktest.Start(t, stacktest.Options{CameraMode: tt.camera})
				cs := s.Create(t, "mobile", &vspb.SessionOptions{IceRestartTimeout: durationpb.New(1500 * time.Millisecond)})
				net, err := switchnet.New("127.0.0.2")
				if err != nil {
					t.Fatal(err)
				}
				a := startApp(t, s, cs, m.mode, net)
				a.wait(t, 20*time.Second, "CONNECTED", connected)
				a.rtp(t, 20)
				before := a.c.Stats().PacketsReceived

				net.Switch("127.0.0.3")
				if err := a.c.NetworkChanged(t.Context(), "wifi->lte"); err != nil {
					t.Fatal(err)
				}
				rec := a.wait(t, 30*time.Second, "RECOVERED", func(e *vspb.SessionEvent) bool { return e.GetType() == vspb.EventType_EVENT_TYPE_RECOVERED })
				a.rtp(t, int(before)+20)
				var started *vspb.SessionEvent
				for _, e := range a.c.Events() {
					if e.GetType() == vspb.EventType_EVENT_TYPE_RECOVERY_STARTED && started == nil {
						started = e
					}
				}
				st := a.c.Stats()
				if got := rec.GetRecovery().GetStep(); got != tt.wantStep {
					t.Errorf("RECOVERED by %v, want %v", got, tt.wantStep)
				}
				if rec.GetRecovery().GetOutage().AsDuration() <= 0 {
					t.Errorf("RECOVERED outage %v, want > 0", rec.GetRecovery().GetOutage().AsDuration())
				}
				if (rec.GetClientId() == cs.GetSession().GetClientId()) != tt.wantSameID {
					t.Errorf("recovered with clientId %s (first %s), want same=%v", rec.GetClientId(), cs.GetSession().GetClientId(), tt.wantSameID)
				}
				if st.ICERestarts != tt.wantRestarts || st.NewPeerConnections != tt.wantNewPCs {
					t.Errorf("ICE restarts %d, new PCs %d; want %d, %d", st.ICERestarts, st.NewPeerConnections, tt.wantRestarts, tt.wantNewPCs)
				}
				if st.LocalAddress != "" && st.LocalCandidateType == "host" && st.LocalAddress[:9] != "127.0.0.3" {
					t.Errorf("media flows from %s after the switch, want 127.0.0.3", st.LocalAddress)
				}
				if st.SequenceGaps != 0 {
					t.Errorf("%d sequence gaps", st.SequenceGaps)
				}
				took := rec.GetTime().AsTime().Sub(started.GetTime().AsTime())
				t.Logf("%s camera, %s client: %s recovered in %v (%s)", tt.camera, m.name, rec.GetMessage(), took, rec.GetClientId())

				// The next outage on the channel starts at the step that
				// worked for its master.
				before = a.c.Stats().PacketsReceived
				net.Switch("127.0.0.4")
				if err := a.c.NetworkChanged(t.Context(), "lte->wifi"); err != nil {
					t.Fatal(err)
				}
				rec2 := a.wait(t, 30*time.Second, "a second RECOVERED", func(e *vspb.SessionEvent) bool {
					return e.GetType() == vspb.EventType_EVENT_TYPE_RECOVERED && e.GetSequence() > rec.GetSequence()
				})
				a.rtp(t, int(before)+20)
				var steps []string
				for _, e := range a.c.Events() {
					if e.GetType() == vspb.EventType_EVENT_TYPE_RECOVERY_STARTED && e.GetSequence() > rec.GetSequence() && e.GetSequence() < rec2.GetSequence() {
						steps = append(steps, fmt.Sprintf("%v learned=%v", e.GetRecovery().GetStep(), e.GetRecovery().GetLearned()))
					}
				}
				if want := fmt.Sprintf("%v learned=true", tt.wantStep); len(steps) != 1 || steps[0] != want {
					t.Errorf("second recovery's steps %v, want [%s]", steps, want)
				}
				if got := rec2.GetRecovery().GetStep(); got != tt.wantStep {
					t.Errorf("second RECOVERED by %v, want %v", got, tt.wantStep)
				}
				t.Logf("%s camera, %s client, second outage: %s", tt.camera, m.name, rec2.GetMessage())
			})
		}
	}
}

// Acceptance 7 (first half): the stream drops, the app resumes with its last
// sequence: no event lost, none duplicated.
func TestE2EResumeLosesNothing(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	cs := s.Create(t, "resumer", nil)
	a := startApp(t, s, cs, viewerclient.ModeConnect, nil)
	a.wait(t, 20*time.Second, "CONNECTED", connected)
	a.c.DropStream()
	a.wait(t, 10*time.Second, "a second APP_ATTACHED", func(e *vspb.SessionEvent) bool {
		return e.GetType() == vspb.EventType_EVENT_TYPE_APP_ATTACHED && e.GetSequence() > 3
	})
	a.rtp(t, 20)
	if _, err := s.API.CloseSession(stacktest.Backend(t.Context()), &vspb.CloseSessionRequest{Name: cs.GetSession().GetName()}); err != nil {
		t.Fatal(err)
	}
	a.wait(t, 10*time.Second, "CLOSED", func(e *vspb.SessionEvent) bool { return e.GetType() == vspb.EventType_EVENT_TYPE_CLOSED })

	// The whole timeline, as a backend sees it.
	w, err := s.API.WatchSession(stacktest.Backend(t.Context()), &vspb.WatchSessionRequest{Name: cs.GetSession().GetName()})
	if err != nil {
		t.Fatal(err)
	}
	var all []uint64
	for {
		r, err := w.Recv()
		if err != nil {
			break
		}
		all = append(all, r.GetEvent().GetSequence())
	}
	var seen []uint64
	for _, e := range a.c.Events() {
		seen = append(seen, e.GetSequence())
	}
	if !slices.Equal(seen, all) {
		t.Errorf("the app saw sequences %v, the timeline has %v", seen, all)
	}
	st := a.c.Stats()
	if st.Resumes < 1 || st.SequenceGaps != 0 {
		t.Errorf("resumes %d, gaps %d; want >= 1 and 0", st.Resumes, st.SequenceGaps)
	}
	t.Logf("%d events, %d resumes, %d duplicates dropped by the client", len(all), st.Resumes, st.DuplicateEvents)
}
