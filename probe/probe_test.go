package probe_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/acme/viewersession/internal/stacktest"
	"github.com/acme/viewersession/kvsemu/camera"
	"github.com/acme/viewersession/probe"
	"github.com/acme/viewersession/sessionmgr"
)

// setup starts a stack and a Prober on it that gathers loopback candidates
// (the emulator's camera is on 127.0.0.1), and resolves the channel.
func setup(t *testing.T, o stacktest.Options, r func(*sessionmgr.Manager) probe.Reserver) (*stacktest.Stack, *probe.Prober, sessionmgr.Channel, *outcomes) {
	t.Helper()
	st := stacktest.Start(t, o)
	seen := &outcomes{n: map[string]int{}}
	var res probe.Reserver = st.Manager
	if r != nil {
		res = r(st.Manager)
	}
	p, err := probe.New(res, probe.Config{Loopback: true, Observe: seen.add})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := st.Manager.ResolveChannel(t.Context(), sessionmgr.ChannelRef{ARN: st.ARN})
	if err != nil {
		t.Fatal(err)
	}
	return st, p, ch, seen
}

// outcomes counts the outcomes a Prober observed.
type outcomes struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *outcomes) add(outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.n[outcome]++
}

func (o *outcomes) count(outcome string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[outcome]
}

func TestProbeVideo(t *testing.T) {
	st, p, ch, seen := setup(t, stacktest.Options{}, nil)
	res, err := p.Probe(t.Context(), ch, 10*time.Second)
	if err != nil {
		t.Fatalf("Probe = %v, want video", err)
	}
	t.Logf("probe: %+v", res)
	if !res.Answered || !res.Media {
		t.Errorf("Probe: answered %v, media %v; want both", res.Answered, res.Media)
	}
	if res.ClientID != sessionmgr.ProbeViewerID {
		t.Errorf("Probe: clientId %q, want %q", res.ClientID, sessionmgr.ProbeViewerID)
	}
	if res.Codec == "" || res.Path.Local == "" || res.Path.Remote == "" || res.Path.Protocol == "" {
		t.Errorf("Probe: codec %q, ICE path %+v; want both set", res.Codec, res.Path)
	}
	if res.Answer <= 0 || res.FirstPacket < res.Answer || res.Elapsed < res.FirstPacket {
		t.Errorf("Probe: answer %v, first packet %v, elapsed %v; want 0 < answer <= first packet <= elapsed", res.Answer, res.FirstPacket, res.Elapsed)
	}
	if got := seen.count("ok"); got != 1 {
		t.Errorf("outcome ok observed %d times, want 1", got)
	}

	// The slot is gone: no record on the channel, and the clientId cools
	// down, so the next probe gets another one.
	list, _, err := st.Manager.List(t.Context(), sessionmgr.ListFilter{ChannelARN: ch.ARN}, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("sessions on the channel after the probe: %d, want 0", len(list))
	}
	res2, err := p.Probe(t.Context(), ch, 10*time.Second)
	if err != nil {
		t.Fatalf("second Probe = %v, want video", err)
	}
	if want := sessionmgr.ProbeViewerID + "-2"; res2.ClientID != want {
		t.Errorf("second Probe: clientId %q, want %q (the first one cooling down)", res2.ClientID, want)
	}
}

func TestProbeNoAnswer(t *testing.T) {
	st, p, ch, seen := setup(t, stacktest.Options{}, nil)
	if err := st.Emu.SetCameraFault(st.ARN, camera.Fault{NoAnswer: true}); err != nil {
		t.Fatal(err)
	}
	const deadline = time.Second
	start := time.Now()
	_, err := p.Probe(t.Context(), ch, deadline)
	took := time.Since(start)
	var de *probe.DeadlineError
	if !errors.As(err, &de) || !errors.Is(err, probe.ErrNoAnswer) {
		t.Fatalf("Probe = %v, want a DeadlineError wrapping ErrNoAnswer", err)
	}
	t.Logf("Probe = %v (after %v)", err, took)
	if took < deadline || took > deadline+2*time.Second {
		t.Errorf("Probe took %v, want its deadline %v (and the release)", took, deadline)
	}
	if de.Result.Answered || de.Deadline != deadline || de.ErrorMetadata()["client_id"] == "" {
		t.Errorf("DeadlineError %+v, metadata %v: want unanswered, the deadline, the clientId", de, de.ErrorMetadata())
	}
	if got := seen.count("no_answer"); got != 1 {
		t.Errorf("outcome no_answer observed %d times, want 1", got)
	}
}

func TestProbeChannelFull(t *testing.T) {
	st, p, ch, seen := setup(t, stacktest.Options{}, nil)
	for i := range sessionmgr.DefaultConfig().MaxPerChannel {
		st.Create(t, "viewer-"+string(rune('a'+i)), nil)
	}
	_, err := p.Probe(t.Context(), ch, 5*time.Second)
	if !errors.Is(err, sessionmgr.ErrChannelFull) {
		t.Fatalf("Probe on a full channel = %v, want ErrChannelFull", err)
	}
	if got := seen.count("channel_full"); got != 1 {
		t.Errorf("outcome channel_full observed %d times, want 1", got)
	}
}

// reserved tells when a probe holds its slot.
type reserved struct {
	*sessionmgr.Manager
	held chan struct{}
}

func (r reserved) ReserveProbe(ctx context.Context, ch sessionmgr.Channel, hold time.Duration) (*sessionmgr.ProbeSlot, error) {
	s, err := r.Manager.ReserveProbe(ctx, ch, hold)
	close(r.held)
	return s, err
}

// A running probe holds one of the channel's places, in memory and in
// Redis (the channel's live set, shared by every replica): the sessions
// get the others, and the place is free again when the probe ends.
func TestProbeCountsAgainstTheLimit(t *testing.T) {
	for _, store := range []string{"memory", "redis"} {
		t.Run(store, func(t *testing.T) {
			held := make(chan struct{})
			st, p, ch, _ := setup(t, stacktest.Options{Redis: store == "redis"},
				func(m *sessionmgr.Manager) probe.Reserver { return reserved{m, held} })
			if err := st.Emu.SetCameraFault(st.ARN, camera.Fault{NoAnswer: true}); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := p.Probe(context.WithoutCancel(t.Context()), ch, 2*time.Second)
				done <- err
			}()
			<-held
			limit := sessionmgr.DefaultConfig().MaxPerChannel
			for i := range limit - 1 {
				st.Create(t, "viewer-"+string(rune('a'+i)), nil)
			}
			ref := sessionmgr.ChannelRef{ARN: st.ARN}
			_, err := st.Manager.Create(t.Context(), sessionmgr.CreateParams{Channel: ref, ViewerID: "one-too-many"})
			if !errors.Is(err, sessionmgr.ErrChannelFull) {
				t.Errorf("Create with %d sessions and a probe on the channel = %v, want ErrChannelFull", limit-1, err)
			}
			if err := <-done; !errors.Is(err, probe.ErrNoAnswer) {
				t.Errorf("Probe = %v, want ErrNoAnswer", err)
			}
			if _, err := st.Manager.Create(t.Context(), sessionmgr.CreateParams{Channel: ref, ViewerID: "after-the-probe"}); err != nil {
				t.Errorf("Create after the probe ended = %v, want a session", err)
			}
		})
	}
}
