//go:build realnet

package realnet

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestTopology checks that the links do what the scenarios say they do:
// wifi carries the traffic at first and packets from the LTE address die
// until the default route moves to lte; losing wifi moves the traffic to
// lte, where the cloud sees the carrier's address (its NAT), never the
// viewer's private one; the carrier drops what does not come from the
// viewer's LTE address; a fade drops everything on wifi while the link
// stays up.
func TestTopology(t *testing.T) {
	needNet(t)
	needTools(t, "nft")
	tp := newTopology(t)
	var ln net.Listener
	if err := tp.cloud.Do(func() (err error) {
		ln, err = net.Listen("tcp4", grpcIP+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The cloud's side tells each connection the address it came from.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, c.RemoteAddr().(*net.TCPAddr).IP.String())
			c.Close()
		}
	}()
	// dial connects from the viewer (from a given local address, or as the
	// routes choose) and returns the local address used and the address
	// the cloud saw the connection come from.
	dial := func(from string) (local, seen string, err error) {
		err = tp.viewer.Do(func() error {
			d := net.Dialer{Timeout: 700 * time.Millisecond}
			if from != "" {
				d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
			}
			c, err := d.Dial("tcp4", ln.Addr().String())
			if err != nil {
				return err
			}
			defer c.Close()
			local = c.LocalAddr().(*net.TCPAddr).IP.String()
			if err := c.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
				return err
			}
			b, err := io.ReadAll(c)
			seen = string(b)
			return err
		})
		return local, seen, err
	}
	mustReach := func(what, from, want, wantSeen string) {
		t.Helper()
		got, seen, err := dial(from)
		if err != nil || got != want || seen != wantSeen {
			t.Fatalf("%s: dial from %q = %q (the cloud saw %q), %v; want a connection from %s that the cloud sees from %s", what, from, got, seen, err, want, wantSeen)
		}
	}
	mustNotReach := func(what, from string) {
		t.Helper()
		if got, _, err := dial(from); err == nil {
			t.Fatalf("%s: dial from %q connected (from %s); want it dropped", what, from, got)
		} else if ne := (net.Error)(nil); !errors.As(err, &ne) || !ne.Timeout() {
			t.Logf("%s: %v", what, err)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	// natted fails the test unless the carrier has masqueraded want
	// connections so far.
	natted := func(what string, want int) {
		t.Helper()
		n, err := tp.natConnections(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Fatalf("%s: the carrier masqueraded %d connections, want %d", what, n, want)
		}
	}

	mustReach("at first", "", wifiViewer, wifiViewer)
	mustNotReach("at first, from the LTE address", lteViewer)
	natted("at first", 0)

	if err := tp.lose(ctx, wifi, lte); err != nil {
		t.Fatal(err)
	}
	mustReach("after wifi is lost", "", lteViewer, carrierOut)
	natted("after wifi is lost", 1)
	if err := tp.restore(ctx, wifi); err != nil {
		t.Fatal(err)
	}
	mustReach("wifi back, route still on lte", "", lteViewer, carrierOut)
	mustNotReach("wifi back, from the Wi-Fi address", wifiViewer)
	natted("wifi back (the carrier drops the Wi-Fi address before its NAT)", 2)
	if err := tp.lose(ctx, lte, wifi); err != nil {
		t.Fatal(err)
	}
	mustReach("after lte is lost", "", wifiViewer, wifiViewer)
	natted("after lte is lost", 2)

	if err := tp.fade(ctx, true); err != nil {
		t.Fatal(err)
	}
	mustNotReach("during the fade", "")
	out, err := tp.viewer.Exec(ctx, "ip", "-o", "link", "show", "wifi")
	if err != nil || !strings.Contains(string(out), "state UP") {
		t.Fatalf("during the fade wifi is not up: %s %v", out, err)
	}
	if err := tp.fade(ctx, false); err != nil {
		t.Fatal(err)
	}
	mustReach("after the fade", "", wifiViewer, wifiViewer)
}
