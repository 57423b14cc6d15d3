// Package redistest gives tests a real redis-server: the shared one that
// `make test` starts (REDIS_URL), or a private one on a free loopback port
// that the test can stop and restart to simulate an outage.
//
// Tests never use the machine's default server on 6379 unless REDIS_URL says
// so. Without REDIS_URL and without a redis-server binary, a test fails when
// CI is set and is skipped otherwise (plain `go test` on a laptop).
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acme/viewersession/internal/redisinfo"
)

// URL returns the address of a Redis server the test may use:
// REDIS_URL when set, otherwise a private server started for the test.
// Tests that share the server must use keys of their own (a unique prefix or
// channel name) and must not flush it.
func URL(tb testing.TB) string {
	tb.Helper()
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return Start(tb).URL()
}

// Server is a private redis-server process owned by one test.
// Its methods are safe for concurrent use.
type Server struct {
	tb   testing.TB
	bin  string
	dir  string
	port int

	// mu guards cmd and exited (closed when cmd has exited).
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start starts a private redis-server on a free loopback port, with no
// persistence, and stops it when the test ends. The port is free when
// picked, but another process (a test's server binding port 0) may take
// it before redis-server binds it: a redis-server that exits for that is
// started again on a new port, up to three times.
func Start(tb testing.TB, extraArgs ...string) *Server {
	tb.Helper()
	bin := Binary(tb)
	s := &Server{tb: tb, bin: bin, dir: tb.TempDir()}
	tb.Cleanup(s.Stop)
	for attempt := 1; ; attempt++ {
		s.port = FreePort(tb)
		err := s.launch(extraArgs...)
		if err == nil {
			return s
		}
		if attempt == 3 || !errors.Is(err, errPortTaken) {
			tb.Fatalf("redis-server on %s: %v", s.Addr(), err)
		}
	}
}

// errPortTaken: redis-server exited because its port was in use.
var errPortTaken = errors.New("its port was taken")

// Binary returns the redis-server binary path (REDIS_SERVER_BIN or PATH);
// it fails the test in CI and skips it elsewhere when there is none.
func Binary(tb testing.TB) string {
	tb.Helper()
	if b := os.Getenv("REDIS_SERVER_BIN"); b != "" {
		return b
	}
	b, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("redis-server not found and CI is set: run the tests with `make test`")
		}
		tb.Skip("redis-server not found; run `make test` to get one")
	}
	return b
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("find free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// URL is the server's redis:// URL.
func (s *Server) URL() string { return fmt.Sprintf("redis://%s/0", s.Addr()) }

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the server's TCP port.
func (s *Server) Port() int { return s.port }

// Dir is the server's working directory (its log is redis.log there).
func (s *Server) Dir() string { return s.dir }

// launch starts the server on s.port and waits until it answers.
func (s *Server) launch(extraArgs ...string) error {
	logPath := filepath.Join(s.dir, "redis.log")
	_ = os.Remove(logPath)
	args := []string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(s.port),
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--logfile", logPath,
	}
	args = append(args, extraArgs...)
	cmd := exec.Command(s.bin, args...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	if err := waitReady(s.Addr(), cmd.Process.Pid, 10*time.Second, exited); err != nil {
		s.Stop()
		if b, _ := os.ReadFile(logPath); bytes.Contains(b, []byte("Address already in use")) {
			return fmt.Errorf("%w: %v", errPortTaken, err)
		}
		return err
	}
	return nil
}

// Stop kills the server (SIGKILL: an outage, not a shutdown) and waits for
// it to exit. Safe to call more than once.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Pause stops the server with SIGSTOP: connections stay open and every
// command hangs, as with a node that froze or a partition. Resume undoes it.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.tb.Helper()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		s.tb.Fatalf("redis-server on %s is not running", s.Addr())
	}
	if err := cmd.Process.Signal(sig); err != nil {
		s.tb.Fatalf("signal redis-server: %v", err)
	}
}

// Restart starts the server again on the same port after Stop. Its data is
// gone (no persistence), as after a real crash of a cache node.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	if err := s.launch(); err != nil {
		s.tb.Fatalf("redis-server on %s, restarted: %v", s.Addr(), err)
	}
}

// waitReady polls the server until it answers, or until it exits (exited
// closed). It asks for the answering server's process id and takes only
// pid's: on a port another redis-server took first, a PING would be
// answered by that one.
func waitReady(addr string, pid int, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("redis-server exited")
		default:
		}
		got, err := processID(addr)
		if err == nil && got == pid {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("another redis-server (pid %d) answers there", got)
		}
		lastErr = err
		time.Sleep(20 * time.Millisecond) // polling a child process; not test synchronisation
	}
	return fmt.Errorf("not ready after %v: %v", timeout, lastErr)
}

// processID asks the server at addr for its process id (INFO server).
func processID(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("INFO server\r\n")); err != nil {
		return 0, err
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(head, "$")))
	if !strings.HasPrefix(head, "$") || err != nil {
		return 0, fmt.Errorf("INFO answered %q", strings.TrimSpace(head))
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, err
	}
	in, err := redisinfo.Parse(string(body))
	if err != nil {
		return 0, err
	}
	return in.Int("process_id")
}
