//go:build browser

package browsertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acme/viewersession/internal/netns"
)

// Addresses, all inside the run's own namespaces.
const (
	boxIP     = "10.213.100.1" // the one-namespace tests: server, camera, TURN and Chromium
	pagesPort = "8090"         // the test pages, on the browser namespace's loopback (a secure context)
	pagesURL  = "http://127.0.0.1:" + pagesPort
	otherURL  = "http://127.0.0.1:8091" // the same pages from an origin the server does not allow
	devHTTP   = "http://127.0.0.1:8080"
)

// newBox makes one namespace with an interface of its own (a veth pair
// inside it stands in for a NIC: this kernel has no dummy interfaces) at
// boxIP. Everything of a one-namespace test runs in it.
func newBox(t *testing.T) *netns.NS {
	t.Helper()
	set := newSet(t)
	ctx := t.Context()
	ns, err := set.New(ctx, "box")
	if err != nil {
		t.Fatal(err)
	}
	noIPv6(t, ns)
	if err := netns.Veth(ctx, ns, "eth0", ns, "eth1"); err != nil {
		t.Fatal(err)
	}
	if err := ns.Batch(ctx, "addr add "+boxIP+"/24 dev eth0", "link set eth0 up", "link set eth1 up"); err != nil {
		t.Fatal(err)
	}
	return ns
}

// noIPv6 turns IPv6 off in ns before its links exist. Otherwise each link
// gains a link-local address a second or so after it comes up (duplicate
// address detection), Chromium sees a network change, and the page's
// requests in flight fail net::ERR_NETWORK_CHANGED (seen in CI: the camera
// page's first KVS call).
func noIPv6(t *testing.T, ns *netns.NS) {
	t.Helper()
	for _, k := range []string{"net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"} {
		if err := ns.Sysctl(t.Context(), k, "1"); err != nil {
			t.Fatal(err)
		}
	}
}

func newSet(t *testing.T) *netns.Set {
	t.Helper()
	set, err := netns.NewSet(nsPrefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := set.Close(); err != nil {
			t.Errorf("delete namespaces: %v", err)
		}
	})
	return set
}

// proc is a process under test, its output kept.
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
}

// start runs name inside ns; t.Cleanup ends it (SIGTERM, then SIGKILL).
func start(t *testing.T, ns *netns.NS, label string, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: label, cmd: ns.Command(name, args...), out: &syncBuffer{notify: make(chan struct{})}, exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop(5 * time.Second)
		if t.Failed() {
			t.Logf("%s output (tail):\n%s", label, tail(p.out.String(), 30))
		}
	})
	return p
}

// stop ends the process: SIGTERM, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitOutput waits until the output contains s.
func (p *proc) waitOutput(t *testing.T, s string, within time.Duration) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		changed := p.out.changed()
		if strings.Contains(p.out.String(), s) {
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited before printing %q:\n%s", p.name, s, tail(p.out.String(), 30))
		case <-deadline.C:
			t.Fatalf("%s did not print %q within %v:\n%s", p.name, s, within, tail(p.out.String(), 30))
		case <-changed:
		}
	}
}

// startServer runs the server binary in ns with args (JSON logs) and waits
// until it serves.
func startServer(t *testing.T, ns *netns.NS, label string, env []string, args ...string) *proc {
	t.Helper()
	p := start(t, ns, label, env, bins.server, append([]string{"-log-format", "json", "-drain-timeout", "10s"}, args...)...)
	p.waitOutput(t, `"msg":"serving"`, 30*time.Second)
	return p
}

// startDevServer runs `server -dev` in ns with its web port on webAddr
// (the test pages' origin allowed), the camera on cameraIP and TURN on
// turnIP.
func startDevServer(t *testing.T, ns *netns.NS, webAddr, cameraIP, turnIP string, extra ...string) *proc {
	t.Helper()
	args := []string{"-dev", "-web-addr", webAddr, "-web-origins", pagesURL,
		"-dev-camera-ip", cameraIP, "-dev-turn-addr", turnIP + ":3478"}
	return startServer(t, ns, "server", nil, append(args, extra...)...)
}

// syncBuffer is an io.Writer safe for concurrent use that tells when it
// grows.
type syncBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	notify chan struct{}
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.buf.Write(p)
	close(s.notify)
	s.notify = make(chan struct{})
	return n, err
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (s *syncBuffer) changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notify
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// nsClient is an HTTP client whose connections are opened inside ns.
func nsClient(ns *netns.NS) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := ns.Do(func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
}

// postJSON posts body to url from inside ns and decodes the JSON answer
// into out (if not nil); a status other than 2xx is an error.
func postJSON(ctx context.Context, ns *netns.NS, url string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := nsClient(ns).Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", url, res.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// devSession is what the -dev web port's /dev/session answers.
type devSession struct {
	Name       string            `json:"name"`
	Token      string            `json:"token"`
	IceServers []json.RawMessage `json:"ice_servers"`
}

// mintSession asks the -dev web port at webURL for a session on channel.
func mintSession(t *testing.T, ns *netns.NS, webURL, channel, viewer string) devSession {
	t.Helper()
	var s devSession
	if err := postJSON(t.Context(), ns, webURL+"/dev/session", map[string]string{"channel": channel, "viewer_id": viewer}, &s); err != nil {
		t.Fatal(err)
	}
	if s.Name == "" || s.Token == "" {
		t.Fatalf("/dev/session answered %+v: want a name and a token", s)
	}
	return s
}

// channelARN returns the ARN of an emulator channel through the -dev
// server's emulator proxy.
func channelARN(t *testing.T, ns *netns.NS, name string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, devHTTP+"/dev/emulator/channels", nil)
	res, err := nsClient(ns).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Channels []struct {
			Name string `json:"name"`
			ARN  string `json:"channelArn"`
		} `json:"channels"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	for _, c := range body.Channels {
		if c.Name == name {
			return c.ARN
		}
	}
	t.Fatalf("no channel %q in the emulator: %+v", name, body.Channels)
	return ""
}

// fault applies an emulator fault through the -dev server's proxy.
func fault(t *testing.T, ns *netns.NS, body map[string]any) {
	t.Helper()
	if err := postJSON(t.Context(), ns, devHTTP+"/dev/emulator/faults", body, nil); err != nil {
		t.Fatal(err)
	}
}

// driver is driver.mjs: Chromium under remote control, in a namespace.
type driver struct {
	t     *testing.T
	proc  *proc
	stdin io.WriteCloser

	mu      sync.Mutex
	next    int
	replies map[int]chan reply
	events  []pageEvent
	notify  chan struct{}
	closed  bool
}

type reply struct {
	Result json.RawMessage `json:"result"`
	Error  string          `json:"error"`
}

// pageEvent is one thing a page reported (window.report) or logged.
type pageEvent struct {
	Page string
	Data map[string]any
}

func (e pageEvent) kind() string { s, _ := e.Data["kind"].(string); return s }

func (e pageEvent) num(key string) float64 { f, _ := e.Data[key].(float64); return f }

func (e pageEvent) str(key string) string { s, _ := e.Data[key].(string); return s }

// startDriver starts driver.mjs and Chromium inside ns, serving the test
// pages on pagesURL (and otherURL).
func startDriver(t *testing.T, ns *netns.NS, chromiumArgs ...string) *driver {
	t.Helper()
	d := &driver{t: t, replies: map[int]chan reply{}, notify: make(chan struct{})}
	cmd := ns.Command("node", "browsertest/driver.mjs")
	cmd.Dir = webDir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{notify: make(chan struct{})}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.stdin = stdin
	d.proc = &proc{name: "driver", cmd: cmd, out: stderr, exited: make(chan struct{})}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		d.read(stdout)
	}()
	go func() {
		<-readDone
		_ = cmd.Wait()
		close(d.proc.exited)
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		d.proc.stop(10 * time.Second)
		if t.Failed() {
			t.Logf("driver stderr (tail):\n%s", tail(stderr.String(), 20))
			t.Logf("page events (tail):\n%s", d.dump(40))
		}
	})
	d.call("launch", map[string]any{"args": chromiumArgs})
	d.call("serve", map[string]any{"dir": ".build/pages", "host": "127.0.0.1", "port": 8090})
	d.call("serve", map[string]any{"dir": ".build/pages", "host": "127.0.0.1", "port": 8091})
	return d
}

func (d *driver) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var m struct {
			Reply *int            `json:"reply"`
			Event string          `json:"event"`
			Page  string          `json:"page"`
			Data  map[string]any  `json:"data"`
			Text  string          `json:"text"`
			Type  string          `json:"type"`
			Res   json.RawMessage `json:"result"`
			Err   string          `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue
		}
		d.mu.Lock()
		if m.Reply != nil {
			if ch := d.replies[*m.Reply]; ch != nil {
				ch <- reply{Result: m.Res, Error: m.Err}
				delete(d.replies, *m.Reply)
			}
		} else {
			data := m.Data
			if m.Event != "page" {
				data = map[string]any{"kind": m.Event, "type": m.Type, "text": m.Text}
			}
			d.events = append(d.events, pageEvent{Page: m.Page, Data: data})
			close(d.notify)
			d.notify = make(chan struct{})
		}
		d.mu.Unlock()
	}
	d.mu.Lock()
	d.closed = true
	for id, ch := range d.replies {
		ch <- reply{Error: "driver exited"}
		delete(d.replies, id)
	}
	close(d.notify)
	d.notify = make(chan struct{})
	d.mu.Unlock()
}

// call runs one driver command and returns its result; an error fails the test.
func (d *driver) call(op string, args map[string]any) json.RawMessage {
	d.t.Helper()
	res, err := d.try(op, args)
	if err != nil {
		d.t.Fatalf("driver %s: %v", op, err)
	}
	return res
}

func (d *driver) try(op string, args map[string]any) (json.RawMessage, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, fmt.Errorf("driver exited")
	}
	d.next++
	id := d.next
	ch := make(chan reply, 1)
	d.replies[id] = ch
	d.mu.Unlock()
	cmd := map[string]any{"id": id, "op": op}
	for k, v := range args {
		cmd[k] = v
	}
	b, _ := json.Marshal(cmd)
	if _, err := d.stdin.Write(append(b, '\n')); err != nil {
		return nil, err
	}
	t := time.NewTimer(60 * time.Second)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.Error != "" {
			return nil, fmt.Errorf("%s", r.Error)
		}
		return r.Result, nil
	case <-t.C:
		return nil, fmt.Errorf("no answer within 60s")
	}
}

// wait returns the first event of page at or after index *from for which
// match is true, moving *from past it; it fails the test after within.
func (d *driver) wait(page string, from *int, within time.Duration, what string, match func(pageEvent) bool) pageEvent {
	d.t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		evs, notify, closed := d.events[*from:], d.notify, d.closed
		base := *from
		d.mu.Unlock()
		for i, e := range evs {
			if e.Page == page && match(e) {
				*from = base + i + 1
				return e
			}
		}
		*from = base + len(evs)
		if closed {
			d.t.Fatalf("the driver exited while waiting for %s", what)
		}
		select {
		case <-notify:
		case <-deadline.C:
			d.t.Fatalf("page %s: no %s within %v", page, what, within)
		}
	}
}

// all returns the events of page so far.
func (d *driver) all(page string) []pageEvent {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []pageEvent
	for _, e := range d.events {
		if e.Page == page {
			out = append(out, e)
		}
	}
	return out
}

func (d *driver) dump(n int) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	evs := d.events
	if len(evs) > n {
		evs = evs[len(evs)-n:]
	}
	for _, e := range evs {
		j, _ := json.Marshal(e.Data)
		fmt.Fprintf(&b, "%s %s\n", e.Page, j)
	}
	return b.String()
}

// viewerURL is the test viewer page for a session.
func viewerURL(origin, endpoint, protocol string, s devSession) string {
	ice, _ := json.Marshal(s.IceServers)
	q := make([]string, 0, 5)
	for _, kv := range [][2]string{{"endpoint", endpoint}, {"protocol", protocol}, {"session", s.Name}, {"token", s.Token}, {"ice", string(ice)}} {
		q = append(q, kv[0]+"="+queryEscape(kv[1]))
	}
	return origin + "/viewer.html?" + strings.Join(q, "&")
}

func queryEscape(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "=", "%3D", "+", "%2B", "#", "%23", " ", "%20", "?", "%3F")
	return r.Replace(s)
}

// video is what a viewer page showed: its first frame and decoded frames.
type video struct {
	firstFrameMs float64 // since the library's start
	frames       float64
}

// waitVideo waits for page's first decoded frame, then for framesDecoded
// to grow by at least grow more frames on the same peer connection.
func (d *driver) waitVideo(page string, from *int, grow float64) video {
	d.t.Helper()
	ff := d.wait(page, from, 20*time.Second, "first decoded frame", func(e pageEvent) bool { return e.kind() == "firstframe" })
	first := d.wait(page, from, 10*time.Second, "media report with frames", func(e pageEvent) bool {
		return e.kind() == "media" && e.num("framesDecoded") > 0
	})
	last := d.wait(page, from, 10*time.Second, fmt.Sprintf("%v more decoded frames", grow), func(e pageEvent) bool {
		return e.kind() == "media" && e.num("peerConnectionId") == first.num("peerConnectionId") &&
			e.num("framesDecoded") >= first.num("framesDecoded")+grow
	})
	return video{firstFrameMs: ff.num("sinceStartMs"), frames: last.num("framesDecoded")}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
