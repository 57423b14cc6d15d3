package kvs

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The tests in this file check what one signaling connection costs, against
// kvsemu: its goroutines and its TLS handshake.

// clientGoroutines counts the goroutines on the client's side of signaling:
// those started by this package (and its internal/ws), by the HTTP transport
// (a connection's read and write loops) and by timers and context.AfterFunc,
// and the ones those start through sync.WaitGroup.Go. The emulator's
// goroutines (its HTTP server's connections, its channels) are not counted.
func clientGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	type goroutine struct{ creator, parent string }
	all := map[string]goroutine{}
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		id, _, _ := strings.Cut(strings.TrimPrefix(g, "goroutine "), " ")
		_, created, ok := strings.Cut(g, "\ncreated by ")
		if !ok {
			continue
		}
		line, _, _ := strings.Cut(created, "\n")
		creator, parent, _ := strings.Cut(line, " in goroutine ")
		all[id] = goroutine{creator: creator, parent: parent}
	}
	var client func(id string, depth int) bool
	client = func(id string, depth int) bool {
		g, ok := all[id]
		if !ok || depth > 10 {
			return false
		}
		for _, p := range []string{
			"github.com/acme/viewersession/kvs.",
			"net/http.(*Transport)",
			"time.goFunc",
			"context.AfterFunc",
		} {
			if strings.HasPrefix(g.creator, p) {
				return true
			}
		}
		return g.creator == "sync.(*WaitGroup).Go" && client(g.parent, depth+1)
	}
	count := 0
	for id := range all {
		if client(id, 0) {
			count++
		}
	}
	return count
}

// TestEmuConnGoroutines checks that an open signaling connection holds at
// most one goroutine: its reader (the close on ctx and the keepalive pings
// start none of their own; the HTTP transport's loops end with the upgrade).
func TestEmuConnGoroutines(t *testing.T) {
	emu, c := startEmu(t)
	const conns = 3
	chans := make([]Channel, conns)
	for i := range chans {
		arn, err := emu.CreateChannel(fmt.Sprintf("porch-%d", i), 0)
		if err != nil {
			t.Fatal(err)
		}
		if chans[i], err = c.ResolveChannel(t.Context(), ChannelRef{ARN: arn}); err != nil {
			t.Fatal(err)
		}
	}
	// Idle control-plane connections would add their transport loops.
	c.closeIdleConnections()
	for i, ch := range chans {
		cn, err := c.Dial(t.Context(), ch, fmt.Sprintf("viewer-%d", i))
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		t.Cleanup(func() { _ = cn.Close() })
	}
	// The transport's loops (of each handshake, of the closed idle
	// connections) end soon after; poll for them (another component's
	// goroutines) with a deadline.
	const want = conns * 1
	deadline := time.Now().Add(5 * time.Second)
	got := clientGoroutines()
	for got > want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		got = clientGoroutines()
	}
	if got > want {
		t.Errorf("client goroutines for %d open connections = %d, want at most %d (1 each)", conns, got, want)
	}
}

// TestEmuTLSResumes checks that signaling sockets resume the TLS session of
// an earlier connection to the endpoint instead of a full handshake.
func TestEmuTLSResumes(t *testing.T) {
	emu, c := startEmu(t)
	arn, err := emu.CreateChannel("porch", 0)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := c.ResolveChannel(t.Context(), ChannelRef{ARN: arn})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		// No pooled connection to reuse: each socket is a TLS connection of
		// its own, after the control plane's (which left a session ticket).
		c.closeIdleConnections()
		cn, err := c.Dial(t.Context(), ch, fmt.Sprintf("viewer-%d", i))
		if err != nil {
			t.Fatalf("Dial #%d: %v", i+1, err)
		}
		if !cn.tlsResumed {
			t.Errorf("Dial #%d: TLS session not resumed, want a resumed session", i+1)
		}
		if err := cn.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
