package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/acme/viewersession/internal/stacktest"
)

// waiter is an output that closes a channel for each pattern the first
// time a written line contains it.
type waiter struct {
	mu   sync.Mutex
	buf  strings.Builder
	want map[string]chan struct{}
}

func newWaiter(patterns ...string) *waiter {
	w := &waiter{want: map[string]chan struct{}{}}
	for _, p := range patterns {
		w.want[p] = make(chan struct{})
	}
	return w
}

func (w *waiter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for pat, ch := range w.want {
		if ch != nil && strings.Contains(w.buf.String(), pat) {
			close(ch)
			w.want[pat] = nil
		}
	}
	return len(p), nil
}

// seen returns the channel closed once pattern was written.
func (w *waiter) seen(pattern string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch := w.want[pattern]; ch != nil {
		return ch
	}
	done := make(chan struct{})
	close(done)
	return done
}

// cutProxy forwards TCP to a target until cut, which closes its listener
// and every connection at once: what a killed server looks like from the
// client (the port then refuses connections).
type cutProxy struct {
	lis    net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
	cut   bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{lis: lis, target: target}
	p.wg.Go(p.serve)
	t.Cleanup(p.Cut)
	return p
}

func (p *cutProxy) Addr() string { return p.lis.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, u) {
			return
		}
		for _, pair := range [][2]net.Conn{{c, u}, {u, c}} {
			p.wg.Go(func() {
				_, _ = io.Copy(pair[0], pair[1])
				pair[0].Close()
				pair[1].Close()
			})
		}
	}
}

func (p *cutProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	p.conns = append(p.conns, cs...)
	return true
}

// Cut kills the "server": no more connections, and the open ones break.
func (p *cutProxy) Cut() {
	p.mu.Lock()
	p.cut = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	p.lis.Close()
	for _, c := range conns {
		c.Close()
	}
	p.wg.Wait()
}

// Issue 16, papercuts 4, 5 and 6: after SIGTERM of the server viewerctl
// printed twenty "0.0 fps" lines, then "stream failed 11 times in a row".
// Here the server says GOING_AWAY (as a draining replica does), then dies
// with the camera (the dev server's emulator dies with it): viewerctl says
// so once, says the stream is down and why (connection refused, with the
// hint), prints one "no video" line instead of one a second, and ends
// saying that the server went away.
func TestWatchServerGoesAway(t *testing.T) {
	t.Parallel()
	st := stacktest.Start(t, stacktest.Options{ChannelName: "demo-camera", Redis: true})
	proxy := newCutProxy(t, st.GRPCAddr)
	cfg := watchConfig{
		commonConfig: commonConfig{Addr: proxy.Addr(), APIKey: testAPIKey, Channel: "demo-camera"},
		ViewerID:     "viewerctl-test",
		Duration:     3 * time.Second,
	}
	conn, err := dialService(cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	out := newWaiter("packets", "is down (")
	w := newWatcher(cfg, conn, out, nil)
	defer w.dev.hc.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a hang fails, not wedges, the test
	defer cancel()
	killed := make(chan error, 1)
	go func() {
		killed <- func() error {
			for _, p := range []string{"packets", ""} {
				if p == "" {
					// GOING_AWAY, as a replica draining on SIGTERM says it.
					ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
					st.Manager.Drain(ctx)
					cancel()
					p = "is down (" // the draining server refuses the rejoin

				}
				select {
				case <-out.seen(p):
				case <-ctx.Done():
					return fmt.Errorf("waiting for %q: %w", p, ctx.Err())
				}
			}
			// The server dies, and the dev server's camera with it.
			proxy.Cut()
			return st.Emu.StopCamera(st.ARN)
		}()
	}()
	err = w.run(ctx)
	if kerr := <-killed; kerr != nil {
		t.Fatalf("killing the server: %v", kerr)
	}
	out.mu.Lock()
	text := out.buf.String()
	out.mu.Unlock()
	t.Logf("viewerctl watch output:\n%s", text)
	t.Logf("error: %v", err)

	if !errors.Is(err, errServerGone) || !strings.Contains(err.Error(), "the server at "+cfg.Addr+" went away") ||
		!strings.Contains(err.Error(), "is the server running at "+cfg.Addr+"?") || strings.Contains(err.Error(), "times in a row") {
		t.Errorf("watch error = %v; want %v saying the server at %s went away, with the hint", err, errServerGone, cfg.Addr)
	}
	lines := strings.Split(text, "\n")
	count := func(re string) (n, first int) {
		first = -1
		for i, l := range lines {
			if regexp.MustCompile(re).MatchString(l) {
				if n++; first < 0 {
					first = i
				}
			}
		}
		return n, first
	}
	if n, _ := count(`server +the server at .* is going away: the app moves to another replica`); n != 1 {
		t.Errorf("%d going-away lines; want 1", n)
	}
	n, down := count(`stream +the stream to the service at .* is down \(.*\): re-dialing`)
	if n < 1 || n > 2 { // once for the GOING_AWAY's rejoin at most, once for the death
		t.Errorf("%d stream-down lines; want 1 or 2", n)
	}
	if n, _ := count(`stream +still down \(connection refused: is the server running at ` + regexp.QuoteMeta(cfg.Addr) + `\?\): re-dialing`); n != 1 {
		t.Errorf("%d still-down lines saying the connection is refused, with the hint; want 1", n)
	}
	if n, _ := count(`redial `); n != 0 {
		t.Errorf("%d re-dial lines while down; want none (the down line says it)", n)
	}
	n, quiet := count(`media +no video since`)
	if n != 1 {
		t.Errorf("%d \"no video\" lines; want 1", n)
	}
	if n, _ := count(`0\.0 fps`); n != 0 {
		t.Errorf("%d \"0.0 fps\" lines; want none", n)
	}
	if down < 0 || quiet < down {
		t.Errorf("the \"no video\" line (%d) is not after the down line (%d)", quiet, down)
	} else {
		for _, l := range lines[quiet+1:] {
			if strings.Contains(l, "packets") {
				t.Errorf("a media line while no video: %q", l)
			}
		}
	}
}

// Issue 16, papercut 8: -duration counted from the session's creation,
// though its help says "how long to watch". A slow first connection (1.5s)
// used to eat a 1s -duration whole; it counts from the join now.
func TestWatchDurationCountsFromJoin(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	cfg := s.config()
	cfg.Duration = time.Second
	conn, err := dialService(cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out syncBuffer
	w := newWatcher(cfg, conn, &out, nil)
	defer w.dev.hc.CloseIdleConnections()
	slow := true
	w.dial = func(ctx context.Context) (*grpc.ClientConn, error) {
		if slow { // the first connection takes 1.5s, like a slow mobile network
			slow = false
			select {
			case <-time.After(1500 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return dialService(cfg.Addr)
	}
	start := time.Now()
	err = w.run(t.Context())
	t.Logf("viewerctl watch output:\n%s", out.String())
	if err != nil {
		t.Fatalf("watch error = %v; want a successful watch of -duration 1s after the join", err)
	}
	if took := time.Since(start); took < 2500*time.Millisecond {
		t.Errorf("the watch took %v; want the 1.5s join plus the 1s -duration", took)
	}
	attached := regexp.MustCompile(`(?m)^(\d\d:\d\d:\d\d\.\d\d\d) .*APP_ATTACHED`).FindStringSubmatch(out.String())
	end := regexp.MustCompile(`(?m)^(\d\d:\d\d:\d\d\.\d\d\d) +end +-duration 1s is up`).FindStringSubmatch(out.String())
	if attached == nil || end == nil {
		t.Fatalf("no APP_ATTACHED or end line")
	}
	a, _ := time.Parse("15:04:05.000", attached[1])
	e, _ := time.Parse("15:04:05.000", end[1])
	if d := e.Sub(a); d < time.Second-50*time.Millisecond {
		t.Errorf("-duration ended %v after the app joined; want 1s", d)
	}
}

// Issue 16, papercut 3: viewerctl get, close and timeline (with -follow),
// and papercut 2 on a real server: sessions -all says why a session ended.
func TestSessionCommands(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	conn, err := dialService(s.grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cfg := s.config()
	w := newWatcher(cfg, conn, io.Discard, nil)
	resp, err := w.create(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	name := resp.GetSession().GetName()
	scfg := sessionConfig{commonConfig: commonConfig{Addr: s.grpcAddr, APIKey: testAPIKey}, Name: name}

	var out bytes.Buffer
	if err := getSession(t.Context(), scfg, &out); err != nil {
		t.Fatalf("get: %v", err)
	}
	t.Logf("viewerctl get:\n%s", out.String())
	for _, want := range []string{"name: +" + name, "viewer: +viewerctl-test", "state: +PENDING", "reason: +-", `events: +2 \(viewerctl timeline ` + name + `\)`} {
		if !regexp.MustCompile("(?m)^" + want + "$").MatchString(out.String()) {
			t.Errorf("get output lacks a line %q", want)
		}
	}
	if strings.Contains(out.String(), resp.GetSessionToken()) {
		t.Errorf("get printed the session token")
	}

	out.Reset()
	if err := printTimeline(t.Context(), scfg, &out); err != nil {
		t.Fatalf("timeline: %v", err)
	}
	t.Logf("viewerctl timeline:\n%s", out.String())
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 2 ||
		!strings.Contains(lines[0], "CREATED: ") || !strings.Contains(lines[1], "CLIENT_ID_ALLOCATED: ") {
		t.Errorf("timeline = %q; want the CREATED and CLIENT_ID_ALLOCATED lines, then the end", lines)
	}

	// timeline -follow prints until the session ends: close it meanwhile.
	follow := scfg
	follow.Follow = true
	fw := newWaiter("CLIENT_ID_ALLOCATED")
	followed := make(chan error, 1)
	go func() { followed <- printTimeline(t.Context(), follow, fw) }()
	<-fw.seen("CLIENT_ID_ALLOCATED")

	out.Reset()
	if err := closeSession(t.Context(), scfg, &out); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got, want := out.String(), name+" CLOSED [CLOSED_BY_BACKEND]\n"; got != want {
		t.Errorf("close printed %q; want %q", got, want)
	}
	if err := <-followed; err != nil {
		t.Fatalf("timeline -follow: %v", err)
	}
	t.Logf("viewerctl timeline -follow:\n%s", fw.buf.String())
	if !strings.Contains(fw.buf.String(), "CLOSED: session closed: closed by the backend [CLOSED_BY_BACKEND]") {
		t.Errorf("timeline -follow did not print the CLOSED event")
	}

	out.Reset() // CloseSession is idempotent
	if err := closeSession(t.Context(), scfg, &out); err != nil || out.String() != name+" CLOSED [CLOSED_BY_BACKEND]\n" {
		t.Errorf("closing twice: %q, %v; want the same line", out.String(), err)
	}

	out.Reset()
	if err := sessions(t.Context(), sessionsConfig{commonConfig: cfg.commonConfig, All: true}, &out); err != nil {
		t.Fatalf("sessions -all: %v", err)
	}
	t.Logf("viewerctl sessions -all:\n%s", out.String())
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 2 ||
		!strings.HasSuffix(lines[0], "REASON") || !strings.HasSuffix(lines[1], "CLOSED_BY_BACKEND") {
		t.Errorf("sessions -all = %q; want the header and the closed session with its reason", lines)
	}

	missing := scfg
	missing.Name = "sessions/" + strings.Repeat("a", 26)
	if err := getSession(t.Context(), missing, &out); err == nil || !strings.Contains(err.Error(), "get session: NotFound") {
		t.Errorf("get of a missing session: %v; want NotFound", err)
	}
}
