// Package netns builds throwaway Linux network namespaces for tests that need
// a real network: real interfaces, routes, sockets and packet filters, with
// the processes under test started inside them by `ip netns exec`.
//
// Every namespace a Set creates is named <prefix><pid>-<tag>-<role>: the
// prefix is the caller's, pid is the creating process and tag is random, so
// parallel runs never collide and Sweep can tell a leftover of a dead run
// from a namespace a live run still uses. A Set deletes what it created in
// Close (call it from t.Cleanup: it also runs after a failure); Sweep removes
// what a killed run left behind.
//
// It drives iproute2's `ip` (and whatever the caller runs inside), so it
// needs root and the `ip` binary: Check says when it cannot work here.
package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrUnavailable means network namespaces cannot be created here: not root,
// no `ip` binary, or a kernel without network namespaces.
var ErrUnavailable = errors.New("netns: network namespaces unavailable")

// cmdTimeout bounds every `ip` command this package runs itself.
const cmdTimeout = 10 * time.Second

// Check reports whether this process can create network namespaces: it must
// be root, find `ip`, and create and delete a probe namespace. The error
// wraps ErrUnavailable and says what is missing.
func Check(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: needs root (euid %d)", ErrUnavailable, os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("%w: no ip binary (install iproute2): %v", ErrUnavailable, err)
	}
	probe := fmt.Sprintf("netnsprobe%d-%s", os.Getpid(), randomTag())
	if _, err := run(ctx, "ip", "netns", "add", probe); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if _, err := run(ctx, "ip", "netns", "del", probe); err != nil {
		return fmt.Errorf("netns: delete probe namespace %s: %w", probe, err)
	}
	return nil
}

// Set is the group of namespaces one test creates and deletes together.
// Its methods are safe for concurrent use; Close must be called.
type Set struct {
	prefix string
	tag    string

	mu     sync.Mutex // guards what follows
	spaces []*NS      // created, in order
	closed bool
}

// NewSet returns an empty Set whose namespaces are named
// <prefix><pid>-<tag>-<role>. prefix must be a short word of letters
// (Sweep finds the run's pid right after it).
func NewSet(prefix string) (*Set, error) {
	if prefix == "" || strings.IndexFunc(prefix, func(r rune) bool { return r < 'a' || r > 'z' }) >= 0 {
		return nil, fmt.Errorf("netns: prefix %q: want lower-case letters", prefix)
	}
	return &Set{prefix: prefix, tag: randomTag()}, nil
}

// New creates the namespace <prefix><pid>-<tag>-<role> with its loopback up.
func (s *Set) New(ctx context.Context, role string) (*NS, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("netns: set closed")
	}
	n := &NS{Name: fmt.Sprintf("%s%d-%s-%s", s.prefix, os.Getpid(), s.tag, role)}
	s.spaces = append(s.spaces, n) // before creating: Close deletes even a half-made one
	s.mu.Unlock()
	if _, err := run(ctx, "ip", "netns", "add", n.Name); err != nil {
		return nil, err
	}
	if err := n.IP(ctx, "link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	return n, nil
}

// Close kills every process still inside the set's namespaces and deletes
// them (their interfaces go with them). It is idempotent and returns every
// error it met; it uses its own timeout, so it works from t.Cleanup after
// the test's context has ended.
func (s *Set) Close() error {
	s.mu.Lock()
	spaces := s.spaces
	s.spaces, s.closed = nil, true
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 3*cmdTimeout)
	defer cancel()
	var errs []error
	for i := len(spaces) - 1; i >= 0; i-- {
		errs = append(errs, remove(ctx, spaces[i].Name))
	}
	return errors.Join(errs...)
}

// Names returns the names of the set's namespaces.
func (s *Set) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, len(s.spaces))
	for i, n := range s.spaces {
		names[i] = n.Name
	}
	return names
}

// List returns the names of the namespaces that start with prefix.
func List(ctx context.Context, prefix string) ([]string, error) {
	out, err := run(ctx, "ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		// "name" or "name (id: 3)".
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if name != "" && strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	return names, nil
}

// Sweep deletes the namespaces named <prefix><pid>-... whose creating
// process is gone (a run that was killed before its cleanup), after killing
// whatever still runs inside them. Namespaces of live processes, and names
// that do not follow the pattern, are left alone. It returns what it
// deleted.
func Sweep(ctx context.Context, prefix string) ([]string, error) {
	names, err := List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var (
		deleted []string
		errs    []error
	)
	for _, name := range names {
		digits, _, ok := strings.Cut(strings.TrimPrefix(name, prefix), "-")
		pid, err := strconv.Atoi(digits)
		if !ok || err != nil || pid <= 0 || alive(pid) {
			continue
		}
		if err := remove(ctx, name); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, name)
	}
	return deleted, errors.Join(errs...)
}

// alive reports whether a process with this pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// remove kills the processes inside the namespace, then deletes it.
func remove(ctx context.Context, name string) error {
	n := &NS{Name: name}
	if pids, err := n.Pids(ctx); err == nil {
		for _, pid := range pids {
			if pid != os.Getpid() { // a thread of ours inside (Do) is not a leftover
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	var errs []error
	if err := os.RemoveAll(filepath.Join(etcDir, name)); err != nil {
		errs = append(errs, fmt.Errorf("netns: %w", err))
	}
	if _, err := run(ctx, "ip", "netns", "del", name); err != nil {
		if still, lerr := List(ctx, name); lerr != nil || contains(still, name) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// NS is one network namespace. Its methods are safe for concurrent use.
type NS struct {
	// Name is the namespace's name under /run/netns.
	Name string
}

// IP runs `ip -n NAME args...`.
func (n *NS) IP(ctx context.Context, args ...string) error {
	_, err := run(ctx, "ip", append([]string{"-n", n.Name}, args...)...)
	return err
}

// Batch runs several `ip` commands (each a line such as "link set wifi
// down") in one `ip -n NAME -batch -` process: they take effect back to back,
// in a few milliseconds, as one change of the network would. It stops at the
// first failing line.
func (n *NS) Batch(ctx context.Context, lines ...string) error {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "-n", n.Name, "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip -n %s -batch %q: %w: %s", n.Name, lines, err, bytes.TrimSpace(out))
	}
	return nil
}

// Exec runs a command inside the namespace and returns its combined output.
func (n *NS) Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	return run(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// ExecInput is Exec with stdin.
func (n *NS) ExecInput(ctx context.Context, stdin string, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %q in %s: %w: %s", name, args, n.Name, err, bytes.TrimSpace(out))
	}
	return out, nil
}

// Command returns a command that runs name inside the namespace. `ip netns
// exec` execs the program, so the command's process is the program itself
// (signals reach it directly). The caller starts it, waits for it and kills
// it; Set.Close kills it too if it is still running then.
func (n *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Sysctl sets a sysctl of the namespace, e.g. "net.ipv4.conf.all.rp_filter".
func (n *NS) Sysctl(ctx context.Context, key, value string) error {
	_, err := n.Exec(ctx, "sysctl", "-q", "-w", key+"="+value)
	return err
}

// Do runs fn on an OS thread that has entered the namespace, so that the
// sockets fn opens (listeners, dials) belong to it; they keep working from
// any goroutine afterwards. Goroutines fn starts run in this process's own
// namespace (only sockets carry the namespace). The thread returns to its
// own namespace when fn returns; if it cannot, it is never used again.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: %w", err)
			return
		}
		defer home.Close()
		if err := setns(filepath.Join("/run/netns", n.Name)); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		err = fn()
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			// Only a thread back home may run other goroutines; otherwise
			// it stays locked and ends with this goroutine.
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

func setns(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("netns: %w", err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("netns: setns %s: %w", path, err)
	}
	return nil
}

// WriteEtc writes /etc/netns/NAME/file: `ip netns exec` bind-mounts it over
// /etc/file for the programs it runs (hosts, resolv.conf: what name
// resolution sees inside). The directory goes with the namespace.
func (n *NS) WriteEtc(file, content string) error {
	if file == "" || strings.ContainsAny(file, "/") || file == "." || file == ".." {
		return fmt.Errorf("netns: etc file %q: want a plain file name", file)
	}
	dir := filepath.Join(etcDir, n.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("netns: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
		return fmt.Errorf("netns: %w", err)
	}
	return nil
}

// etcDir holds the per-namespace /etc files `ip netns exec` mounts.
const etcDir = "/etc/netns"

// Pids returns the processes running inside the namespace.
func (n *NS) Pids(ctx context.Context) ([]int, error) {
	out, err := run(ctx, "ip", "netns", "pids", n.Name)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Veth creates a veth pair with one end, aName, in a and the other, bName,
// in b (a and b may be the same namespace). Both ends are created directly
// inside their namespaces, so the names only need to be unique there. They
// are left down.
func Veth(ctx context.Context, a *NS, aName string, b *NS, bName string) error {
	return a.IP(ctx, "link", "add", aName, "type", "veth", "peer", "name", bName, "netns", b.Name)
}

// run runs a command with the package's timeout; the error carries its
// output.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

func randomTag() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
