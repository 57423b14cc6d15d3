package netns

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// needNamespaces skips the test where namespaces cannot be created (not
// root, no ip): the only reason this package's tests may skip.
func needNamespaces(t *testing.T) {
	t.Helper()
	if err := Check(t.Context()); err != nil {
		t.Skipf("skipping: %v", err)
	}
}

func TestSetVethAndClose(t *testing.T) {
	needNamespaces(t)
	ctx := t.Context()
	s, err := NewSet("nstest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	a, err := s.New(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.New(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := Veth(ctx, a, "left", b, "right"); err != nil {
		t.Fatal(err)
	}
	if err := a.Batch(ctx, "addr add 10.213.250.1/30 dev left", "link set left up"); err != nil {
		t.Fatal(err)
	}
	out, err := a.Exec(ctx, "ip", "-o", "-4", "addr", "show", "dev", "left")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "10.213.250.1/30") {
		t.Fatalf("ip addr inside %s = %q, want 10.213.250.1/30 on left", a.Name, out)
	}
	if out, err := b.Exec(ctx, "ip", "-o", "link", "show", "right"); err != nil || !strings.Contains(string(out), "right") {
		t.Fatalf("the veth's other end is not in %s: %q, %v", b.Name, out, err)
	}

	// /etc/netns/NAME/hosts is what programs inside see as /etc/hosts.
	if err := a.WriteEtc("hosts", "10.213.250.9 camera.example.test\n"); err != nil {
		t.Fatal(err)
	}
	if out, err := a.Exec(ctx, "getent", "hosts", "camera.example.test"); err != nil || !strings.Contains(string(out), "10.213.250.9") {
		t.Fatalf("getent hosts inside %s = %q, %v; want 10.213.250.9 from its etc file", a.Name, out, err)
	}

	// A process left running inside is killed by Close, and the namespaces go.
	cmd := a.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	names := s.Names()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-waited; err == nil {
		t.Fatal("the process inside the namespace exited cleanly; want it killed by Close")
	}
	for _, name := range names {
		left, err := List(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 0 {
			t.Errorf("after Close, ip netns list still has %v", left)
		}
	}
	if _, err := os.Stat(filepath.Join(etcDir, a.Name)); !os.IsNotExist(err) {
		t.Errorf("after Close, /etc/netns/%s still exists (stat: %v)", a.Name, err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestSweepDeletesOnlyDeadRuns(t *testing.T) {
	needNamespaces(t)
	ctx := t.Context()
	// A pid that is surely gone: a process that has exited and been reaped.
	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("nssweep%d-%s-x", done.Process.Pid, randomTag())
	if _, err := run(ctx, "ip", "netns", "add", dead); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = remove(context.Background(), dead) })
	s, err := NewSet("nssweep")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	live, err := s.New(ctx, "live")
	if err != nil {
		t.Fatal(err)
	}

	deleted, err := Sweep(ctx, "nssweep")
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 1 || deleted[0] != dead {
		t.Errorf("Sweep deleted %v, want only %s (its creator %d is gone)", deleted, dead, done.Process.Pid)
	}
	left, err := List(ctx, "nssweep")
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0] != live.Name {
		t.Errorf("after Sweep, namespaces %v, want only this run's %s", left, live.Name)
	}
}

func TestNewSetRejectsBadPrefix(t *testing.T) {
	for _, give := range []string{"", "Vs", "vs-1", "v s"} {
		if _, err := NewSet(give); err == nil {
			t.Errorf("NewSet(%q) = nil error, want an error", give)
		}
	}
}

func TestDoOpensSocketsInTheNamespace(t *testing.T) {
	needNamespaces(t)
	ctx := t.Context()
	s, err := NewSet("nstest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	a, err := s.New(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.New(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := Veth(ctx, a, "left", b, "right"); err != nil {
		t.Fatal(err)
	}
	if err := a.Batch(ctx, "addr add 10.213.251.1/30 dev left", "link set left up"); err != nil {
		t.Fatal(err)
	}
	if err := b.Batch(ctx, "addr add 10.213.251.2/30 dev right", "link set right up"); err != nil {
		t.Fatal(err)
	}
	// 10.213.251.1 exists only in a: listening there works only inside it.
	if ln, err := net.Listen("tcp4", "10.213.251.1:0"); err == nil {
		ln.Close()
		t.Fatal("listening on a's address worked outside a")
	}
	var ln net.Listener
	if err := a.Do(func() (err error) {
		ln, err = net.Listen("tcp4", "10.213.251.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	var conn net.Conn
	if err := b.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dial from b to a over the veth: %v", err)
	}
	conn.Close()
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
}
