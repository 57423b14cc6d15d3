//go:build browser

package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/acme/viewersession/internal/netns"
)

// TestDrain is (d): two replicas share Redis behind a load balancer that
// sends new connections to a ready replica; SIGTERM to the one serving the
// page delivers GOING_AWAY to the browser's watch, and the library resumes
// on the other replica, which takes the session over: the video plays again.
func TestDrain(t *testing.T) {
	needBrowser(t)
	box := newBox(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "token-secret")
	if err := os.WriteFile(secret, []byte("browser-test-token-secret-0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	redis := start(t, box, "redis", nil, "redis-server", "--bind", "127.0.0.1", "--port", "6379", "--save", "", "--appendonly", "no", "--dir", dir)
	redis.waitOutput(t, "Ready to accept connections", 20*time.Second)
	ca := filepath.Join(dir, "kvsemu-ca.pem")
	emu := start(t, box, "kvs-emulator", nil, bins.emulator, "-addr", "127.0.0.1:4567", "-ca-out", ca)
	emu.waitOutput(t, "demo-camera", 20*time.Second)

	const apiKey = "browser-test-api-key"
	env := []string{"AWS_ACCESS_KEY_ID=AKIDEMULATOR", "AWS_SECRET_ACCESS_KEY=emulator-secret", "AWS_EC2_METADATA_DISABLED=true", "VS_API_KEYS=" + apiKey}
	replica := func(id, grpc, http, web string) *proc {
		return startServer(t, box, "replica "+id, env,
			"-grpc-addr", grpc, "-http-addr", http, "-web-addr", web, "-web-origins", pagesURL,
			"-redis-url", "redis://127.0.0.1:6379/0", "-replica-id", id, "-token-secret-file", secret,
			"-kvs-endpoint", "https://127.0.0.1:4567", "-kvs-ca-file", ca, "-aws-region", "us-west-2")
	}
	a := replica("a", "127.0.0.1:50051", "127.0.0.1:8080", "127.0.0.1:8181")
	replica("b", "127.0.0.1:50052", "127.0.0.1:8082", "127.0.0.1:8182")
	lb := startBalancer(t, box, boxIP+":8081",
		backend{addr: "127.0.0.1:8181", ready: "http://127.0.0.1:8080/readyz"},
		backend{addr: "127.0.0.1:8182", ready: "http://127.0.0.1:8082/readyz"})

	// The backend's part: CreateSession with the API key, over the web port (Connect JSON).
	var created struct {
		Session struct {
			Name       string            `json:"name"`
			IceServers []json.RawMessage `json:"iceServers"`
		} `json:"session"`
		Token string `json:"sessionToken"`
	}
	if err := callJSON(t.Context(), box, "http://127.0.0.1:8181/viewersession.v1.ViewerSessionService/CreateSession", apiKey,
		map[string]any{"channel": map[string]string{"name": "demo-camera"}, "viewerId": "drain"}, &created); err != nil {
		t.Fatal(err)
	}
	s := devSession{Name: created.Session.Name, Token: created.Token, IceServers: created.Session.IceServers}
	d := startDriver(t, box)
	endpoint := "http://" + boxIP + ":8081"
	d.call("open", map[string]any{"page": "v", "url": viewerURL(pagesURL, endpoint, "grpc-web", s)})
	from := 0
	before := d.waitVideo("v", &from, 15)
	if got := lb.served(0); got == 0 {
		t.Fatalf("replica a served no connection; want the page on a first")
	}

	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sigterm := time.Now()
	goAway := d.wait("v", &from, 15*time.Second, "GOING_AWAY on the page's watch", func(e pageEvent) bool {
		return e.kind() == "timeline" && e.str("type") == "GOING_AWAY"
	})
	owner := d.wait("v", &from, 20*time.Second, "the session taken over by replica b", func(e pageEvent) bool {
		return e.kind() == "timeline" && e.str("type") == "OWNER_CHANGED"
	})
	pc := d.wait("v", &from, 20*time.Second, "video on a new peer connection", func(e pageEvent) bool {
		return e.kind() == "media" && e.num("framesDecoded") > 0
	})
	after := d.wait("v", &from, 15*time.Second, "video growing after the takeover", func(e pageEvent) bool {
		return e.kind() == "media" && e.num("peerConnectionId") == pc.num("peerConnectionId") && e.num("framesDecoded") >= pc.num("framesDecoded")+15
	})
	select {
	case <-a.exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("replica a still running 15s after SIGTERM")
	}
	if code := a.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("replica a exited %d after SIGTERM; want 0", code)
	}
	if lb.served(1) == 0 {
		t.Errorf("replica b served no connection: the page did not resume there")
	}
	if testing.Verbose() {
		for _, e := range d.all("v") {
			if k := e.kind(); k != "media" && k != "state" {
				t.Logf("  %6.0f %s %s %s %s %s", e.num("t"), k, e.str("type"), e.str("reason"), e.str("message"), e.str("description"))
			}
		}
	}
	t.Logf("drain: frames decoded %v on a (first frame %.0f ms); SIGTERM; GOING_AWAY %q; %q; video again on peer connection %v: frames decoded %v, %.1f s after the SIGTERM",
		before.frames, before.firstFrameMs, goAway.str("message"), owner.str("message"), after.num("peerConnectionId"), after.num("framesDecoded"), time.Since(sigterm).Seconds())
}

// callJSON makes a Connect JSON unary call from inside ns with a bearer credential.
func callJSON(ctx context.Context, ns *netns.NS, url, bearer string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytesReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Connect-Protocol-Version", "1")
	res, err := nsClient(ns).Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return errors.New(res.Status + ": " + string(data))
	}
	return json.Unmarshal(data, out)
}

// backend is one replica behind the balancer.
type backend struct {
	addr  string // its web port
	ready string // its readiness URL
}

// balancer is a TCP load balancer as a deployment has one: it health-checks
// each replica's /readyz every 100 ms and sends each new connection to the
// first ready one. Connections it made are cut when their replica goes.
type balancer struct {
	ln       net.Listener
	backends []backend
	ready    []atomic.Bool
	count    []atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

func startBalancer(t *testing.T, ns *netns.NS, addr string, backends ...backend) *balancer {
	t.Helper()
	b := &balancer{backends: backends, ready: make([]atomic.Bool, len(backends)), count: make([]atomic.Int64, len(backends)),
		stop: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	if err := ns.Do(func() error {
		var err error
		b.ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	client := nsClient(ns)
	client.Timeout = time.Second
	check := func() {
		for i, be := range b.backends {
			res, err := client.Get(be.ready)
			ok := err == nil && res.StatusCode == http.StatusOK
			if err == nil {
				res.Body.Close()
			}
			b.ready[i].Store(ok)
		}
	}
	check()
	b.wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-tick.C:
				check()
			}
		}
	})
	b.wg.Go(func() {
		for {
			c, err := b.ln.Accept()
			if err != nil {
				return
			}
			b.wg.Go(func() { b.serve(ns, c) })
		}
	})
	t.Cleanup(func() {
		close(b.stop)
		b.ln.Close()
		b.mu.Lock()
		for c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
		client.CloseIdleConnections()
	})
	return b
}

func (b *balancer) served(i int) int64 { return b.count[i].Load() }

func (b *balancer) track(c net.Conn, add bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if add {
		b.conns[c] = struct{}{}
	} else {
		delete(b.conns, c)
	}
}

func (b *balancer) serve(ns *netns.NS, c net.Conn) {
	b.track(c, true)
	defer b.track(c, false)
	defer c.Close()
	pick := -1
	for i := range b.backends {
		if b.ready[i].Load() {
			pick = i
			break
		}
	}
	if pick < 0 {
		return // nothing ready: refuse, as a balancer with no healthy target does
	}
	var up net.Conn
	if err := ns.Do(func() error {
		var err error
		up, err = net.DialTimeout("tcp", b.backends[pick].addr, 2*time.Second)
		return err
	}); err != nil {
		return
	}
	b.count[pick].Add(1)
	b.track(up, true)
	defer b.track(up, false)
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}
