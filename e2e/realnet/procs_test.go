//go:build realnet

package realnet

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// apiKey is the backend API key the server accepts (VS_API_KEYS).
const apiKey = "realnet-backend-key-0123456789abcdef"

// channel is the -dev server's demo channel with its simulated camera.
const channel = "demo-camera"

// server is cmd/server -dev running in the cloud namespace.
type server struct {
	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan struct{}
}

// startServer starts the server -dev with the camera in the given mode on
// its own address and TURN on a cloud address, and waits (bounded) until it
// serves. The session defaults are the server's own: the suite measures
// what a deployment gets.
func startServer(t *testing.T, tp *topology, mode string) *server {
	t.Helper()
	needBinaries(t)
	args := []string{"-dev",
		"-grpc-addr", grpcAddr,
		"-http-addr", "127.0.0.1:8080",
		"-drain-timeout", "2s",
		"-log-format", "json",
		"-dev-camera-mode", mode,
		"-dev-camera-ip", cameraIP,
		"-dev-turn-addr", turnAddr,
	}
	s := &server{log: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = tp.cloud.Command(bins.server, args...)
	s.cmd.Env = append(os.Environ(), "VS_API_KEYS="+apiKey)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("server log (last 40 lines, pion's own left out):\n%s", tail(withoutPion(s.log.String()), 40))
		}
	})
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		changed := s.log.changed()
		if strings.Contains(s.log.String(), `"msg":"serving"`) {
			break
		}
		select {
		case <-s.exited:
			t.Fatalf("server %v exited before serving:\n%s", args, s.log.String())
		case <-deadline.C:
			t.Fatalf("server not serving within 20s:\n%s", s.log.String())
		case <-changed:
		}
	}
	return s
}

// stop ends the server with SIGTERM, then SIGKILL after a bound.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// viewer is `viewerctl watch -json` running in the viewer namespace; rec
// holds its output lines as they arrive.
type viewer struct {
	cmd    *exec.Cmd
	rec    *recorder
	stderr *syncBuffer
	exited chan struct{}
	err    error // cmd.Wait's, once exited is closed
}

// startViewer starts viewerctl watch until interrupted.
func startViewer(t *testing.T, tp *topology, extra ...string) *viewer {
	t.Helper()
	needBinaries(t)
	args := append([]string{"watch", "-json", "-addr", grpcAddr, "-channel", channel, "-duration", "0"}, extra...)
	v := &viewer{rec: newRecorder(), stderr: &syncBuffer{}, exited: make(chan struct{})}
	v.cmd = tp.viewer.Command(bins.viewerctl, args...)
	v.cmd.Env = append(os.Environ(), "VIEWERCTL_API_KEY="+apiKey)
	v.cmd.Stderr = v.stderr
	out, err := v.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	go func() {
		v.rec.read(out)
		close(read)
	}()
	go func() {
		<-read
		v.err = v.cmd.Wait()
		close(v.exited)
	}()
	t.Cleanup(func() {
		v.stop(5 * time.Second)
		if t.Failed() {
			t.Logf("viewerctl %v stderr (last 30 lines):\n%s", args, tail(v.stderr.String(), 30))
		}
	})
	return v
}

// stop interrupts viewerctl (it closes its session and prints its summary)
// and waits for it to exit, killing it after wait.
func (v *viewer) stop(wait time.Duration) {
	select {
	case <-v.exited:
		return
	default:
	}
	_ = v.cmd.Process.Signal(os.Interrupt)
	select {
	case <-v.exited:
	case <-time.After(wait):
		_ = v.cmd.Process.Kill()
		<-v.exited
	}
}

// line is one JSON line of viewerctl watch -json. Fields not listed stay
// in fields, for printing.
type line struct {
	at     time.Time // the line's "time", else when it was read
	raw    string
	fields map[string]any

	Kind string `json:"kind"`
	Time string `json:"time"`

	// kind media
	PC      uint32 `json:"pc"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	Frames  uint64 `json:"frames"`

	// kind event
	Sequence uint64 `json:"sequence"`
	Type     string `json:"type"`
	Step     string `json:"step"`
	OutageMS int64  `json:"outage_ms"`
	Learned  bool   `json:"learned"`
	ClientID string `json:"client_id"`

	// kind redial
	Reason string `json:"reason"`

	// kind summary
	FirstVideoMS    int64           `json:"first_video_ms"`
	Outages         json.RawMessage `json:"outages"`
	BlackMS         int64           `json:"black_ms"`
	FalseRecoveries int64           `json:"false_recoveries"`
	OK              bool            `json:"ok"`
	Error           string          `json:"error"`
}

// recorder collects a process's output lines; waiters are woken on every
// new line.
type recorder struct {
	mu     sync.Mutex // guards what follows
	lines  []line
	bad    []string      // lines that are not JSON
	notify chan struct{} // closed and replaced on every change
	eof    bool
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{})} }

func (r *recorder) read(rd io.Reader) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		text := sc.Text()
		l := line{at: time.Now(), raw: text}
		err := json.Unmarshal([]byte(text), &l)
		if err == nil {
			err = json.Unmarshal([]byte(text), &l.fields)
		}
		r.mu.Lock()
		if err != nil {
			r.bad = append(r.bad, text)
		} else {
			if ts, err := time.Parse(time.RFC3339Nano, l.Time); err == nil {
				l.at = ts
			}
			r.lines = append(r.lines, l)
		}
		close(r.notify)
		r.notify = make(chan struct{})
		r.mu.Unlock()
	}
	r.mu.Lock()
	r.eof = true
	close(r.notify)
	r.notify = make(chan struct{})
	r.mu.Unlock()
}

// snapshot returns the lines so far, a channel closed on the next change,
// and whether the output has ended.
func (r *recorder) snapshot() ([]line, <-chan struct{}, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lines[:len(r.lines):len(r.lines)], r.notify, r.eof
}

// notJSON returns the output lines that were not JSON.
func (r *recorder) notJSON() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bad...)
}

// waitUntil waits until cond holds for the lines so far, the output ends,
// or the deadline passes; it returns whether cond held.
func (r *recorder) waitUntil(deadline time.Time, cond func([]line) bool) bool {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		lines, changed, eof := r.snapshot()
		if cond(lines) {
			return true
		}
		if eof {
			return false
		}
		select {
		case <-changed:
		case <-timer.C:
			lines, _, _ := r.snapshot()
			return cond(lines)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use that tells waiters
// when it grows.
type syncBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	notify chan struct{}
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.notify != nil {
		close(s.notify)
		s.notify = nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// changed returns a channel closed on the next Write.
func (s *syncBuffer) changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.notify == nil {
		s.notify = make(chan struct{})
	}
	return s.notify
}

// withoutPion drops the lines pion logs itself (ICE pings and the like),
// which bury the service's.
func withoutPion(log string) string {
	var keep []string
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, `"component":"pion"`) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// binaries are the suite's builds of cmd/server and cmd/viewerctl.
type binaries struct {
	server, viewerctl string
}

var bins binaries

// build builds both binaries into dir (without -race: the suite measures
// times), from this module or from the source tree REALNET_SRC names.
func build(dir string) (binaries, error) {
	b := binaries{server: filepath.Join(dir, "server"), viewerctl: filepath.Join(dir, "viewerctl")}
	for _, p := range []struct{ out, pkg string }{
		{b.server, "github.com/acme/viewersession/cmd/server"},
		{b.viewerctl, "github.com/acme/viewersession/cmd/viewerctl"},
	} {
		cmd := exec.Command("go", "build", "-o", p.out, p.pkg)
		cmd.Dir = os.Getenv("REALNET_SRC") // empty: this module
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %w\n%s", p.pkg, err, out)
		}
	}
	return b, nil
}
