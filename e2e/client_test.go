package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/acme/viewersession/internal/switchnet"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/viewerclient"
)

// app is a thin client (a real pion peer) running one session.
type app struct {
	name string
	cs   *vspb.CreateSessionResponse
	c    *viewerclient.Client
	done chan error // Run's result; put back by whoever takes it
}

// iceTimeouts make a dead ICE pair noticed within seconds.
var iceTimeouts = viewerclient.ICETimeouts{Disconnected: time.Second, Failed: 2 * time.Second, Keepalive: 250 * time.Millisecond}

// startApp runs a thin client for cs over conn; t.Cleanup stops it.
func startApp(t *testing.T, name string, conn *grpc.ClientConn, cs *vspb.CreateSessionResponse, mode viewerclient.Mode) *app {
	t.Helper()
	net, err := switchnet.New("127.0.0.1") // loopback only, the machine's network unwatched
	if err != nil {
		t.Fatal(err)
	}
	c, err := viewerclient.New(viewerclient.Config{
		Conn:        conn,
		Session:     cs.GetSession().GetName(),
		Token:       cs.GetSessionToken(),
		Mode:        mode,
		Net:         net,
		IceServers:  cs.GetSession().GetIceServers(),
		ICETimeouts: iceTimeouts,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &app{name: name, cs: cs, c: c, done: make(chan error, 1)}
	go func() { a.done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-a.done:
		case <-time.After(20 * time.Second):
			t.Errorf("%s: thin client did not stop", name)
		}
	})
	return a
}

// arn is the app's channel.
func (a *app) arn() string { return a.cs.GetSession().GetChannel().GetArn() }

// running returns nil while Run runs, else Run's result.
func (a *app) running() error {
	select {
	case err := <-a.done:
		a.done <- err
		if err == nil {
			return fmt.Errorf("%s: Run returned nil (session closed)", a.name)
		}
		return fmt.Errorf("%s: Run returned %w", a.name, err)
	default:
		return nil
	}
}

// ended waits for Run to return and gives its result.
func (a *app) ended(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-a.done:
		a.done <- err
		return err
	case <-time.After(timeout):
		t.Fatalf("%s: thin client still running after %v", a.name, timeout)
		return nil
	}
}

// wait waits for an event matching match (one seen before counts).
func (a *app) wait(t *testing.T, timeout time.Duration, what string, match func(*vspb.SessionEvent) bool) *vspb.SessionEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	e, err := a.c.WaitEvent(ctx, match)
	if err != nil {
		t.Fatalf("%s: waiting for %s: %v (timeline:%s)", a.name, what, err, summary(a.c.Events()))
	}
	return e
}

// rtp waits until n RTP packets have arrived in total.
func (a *app) rtp(t *testing.T, n int64, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	if err := a.c.WaitRTP(ctx, int(n)); err != nil {
		t.Fatalf("%s: waiting for %d RTP packets: %v (have %d; timeline:%s)", a.name, n, err, a.c.Stats().PacketsReceived, summary(a.c.Events()))
	}
}

func connected(e *vspb.SessionEvent) bool {
	return e.GetState() == vspb.SessionState_SESSION_STATE_CONNECTED
}

func isType(t vspb.EventType) func(*vspb.SessionEvent) bool {
	return func(e *vspb.SessionEvent) bool { return e.GetType() == t }
}

// after matches events after sequence seq that match m.
func after(seq uint64, m func(*vspb.SessionEvent) bool) func(*vspb.SessionEvent) bool {
	return func(e *vspb.SessionEvent) bool { return e.GetSequence() > seq && m(e) }
}

// create makes a session on channel arn through api.
func create(t *testing.T, api vspb.ViewerSessionServiceClient, arn, viewer string) *vspb.CreateSessionResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	resp, err := api.CreateSession(backend(ctx), &vspb.CreateSessionRequest{Channel: &vspb.Channel{Arn: arn}, ViewerId: viewer})
	if err != nil {
		t.Fatalf("CreateSession(%q): %v", viewer, err)
	}
	return resp
}

// closeSession closes a session as a backend.
func closeSession(t *testing.T, api vspb.ViewerSessionServiceClient, name string) *vspb.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	resp, err := api.CloseSession(backend(ctx), &vspb.CloseSessionRequest{Name: name})
	if err != nil {
		t.Fatalf("CloseSession(%s): %v", name, err)
	}
	return resp.GetSession()
}

// watcher is a backend's WatchSession stream, read to its end.
type watcher struct {
	done chan struct{}
	// Written before done is closed.
	events []*vspb.SessionEvent
	err    error
}

// watchBackend opens WatchSession as a backend (API key) on api from
// sequence `from` and reads it until it ends (after the terminal event).
// t.Cleanup cancels it.
func watchBackend(t *testing.T, api vspb.ViewerSessionServiceClient, name string, from uint64) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{done: make(chan struct{})}
	stream, err := api.WatchSession(backend(ctx), &vspb.WatchSessionRequest{Name: name, AfterSequence: from})
	if err != nil {
		cancel()
		t.Fatalf("WatchSession(%s): %v", name, err)
	}
	go func() {
		defer close(w.done)
		for {
			r, err := stream.Recv()
			if err != nil {
				w.err = err
				return
			}
			w.events = append(w.events, r.GetEvent())
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-w.done
	})
	return w
}

// wait waits for the stream to end and returns its events.
func (w *watcher) wait(t *testing.T, timeout time.Duration) []*vspb.SessionEvent {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(timeout):
		t.Fatalf("backend watch still open after %v", timeout)
	}
	if w.err != nil && !errors.Is(w.err, io.EOF) {
		t.Errorf("backend watch ended with %v", w.err)
	}
	return w.events
}

// fullTimeline reads a session's whole timeline as a backend (the session
// must have ended).
func fullTimeline(t *testing.T, api vspb.ViewerSessionServiceClient, name string) []*vspb.SessionEvent {
	t.Helper()
	return watchBackend(t, api, name, 0).wait(t, 15*time.Second)
}

// contiguous checks that a timeline is 1, 2, 3, ... with no gap.
func contiguous(evs []*vspb.SessionEvent) error {
	for i, e := range evs {
		if e.GetSequence() != uint64(i+1) {
			return fmt.Errorf("event %d has sequence %d, want %d (sequences %v)", i, e.GetSequence(), i+1, sequences(evs))
		}
	}
	return nil
}

// sameTimeline checks that two views of a timeline are identical, but
// for the TURN credentials, which the app's view carries and a backend's
// (want) never does.
func sameTimeline(got, want []*vspb.SessionEvent) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d events, want %d:\n got %v\nwant %v", len(got), len(want), sequences(got), sequences(want))
	}
	for i := range got {
		if turnCredentials(want[i]) {
			return fmt.Errorf("event %d: a backend's view carries TURN credentials: %v", i, want[i])
		}
		if !proto.Equal(withoutCredentials(got[i]), want[i]) {
			return fmt.Errorf("event %d differs:\n got %v\nwant %v", i, got[i], want[i])
		}
	}
	return nil
}

// withoutCredentials is e without TURN usernames and credentials.
func withoutCredentials(e *vspb.SessionEvent) *vspb.SessionEvent {
	c := proto.Clone(e).(*vspb.SessionEvent)
	for _, list := range [][]*vspb.IceServer{c.GetIceServers().GetIceServers(), c.GetRenegotiate().GetIceServers()} {
		for _, is := range list {
			is.Username, is.Credential = "", ""
		}
	}
	return c
}

func turnCredentials(e *vspb.SessionEvent) bool {
	for _, list := range [][]*vspb.IceServer{e.GetIceServers().GetIceServers(), e.GetRenegotiate().GetIceServers()} {
		for _, is := range list {
			if is.GetUsername() != "" || is.GetCredential() != "" {
				return true
			}
		}
	}
	return false
}

func sequences(evs []*vspb.SessionEvent) []uint64 {
	var out []uint64
	for _, e := range evs {
		out = append(out, e.GetSequence())
	}
	return out
}

// summary is a timeline in one line: TYPE or ->STATE.
func summary(evs []*vspb.SessionEvent) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(" ")
		if e.GetType() == vspb.EventType_EVENT_TYPE_STATE_CHANGED {
			b.WriteString("->" + strings.TrimPrefix(e.GetState().String(), "SESSION_STATE_"))
		} else {
			b.WriteString(strings.TrimPrefix(e.GetType().String(), "EVENT_TYPE_"))
		}
	}
	return b.String()
}

// clientIDs returns the distinct clientIds of events with sequence <= upTo.
func clientIDs(evs []*vspb.SessionEvent, upTo uint64) []string {
	var out []string
	for _, e := range evs {
		if e.GetSequence() <= upTo && e.GetClientId() != "" && !slices.Contains(out, e.GetClientId()) {
			out = append(out, e.GetClientId())
		}
	}
	return out
}

// percentile returns the p-th percentile (0..100) of ds, nearest rank.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (p*len(s) + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}
