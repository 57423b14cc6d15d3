//go:build realnet

package realnet

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// TestTopology checks that the links do what the scenarios say they do:
// wifi carries the traffic at first and packets from the LTE address die
// until the default route moves to lte; losing wifi moves the traffic to
// lte; a fade drops everything on wifi while the link stays up.
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
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// dial connects from the viewer (from a given local address, or as the
	// routes choose) and returns the local address used.
	dial := func(from string) (string, error) {
		var local string
		err := tp.viewer.Do(func() error {
			d := net.Dialer{Timeout: 700 * time.Millisecond}
			if from != "" {
				d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
			}
			c, err := d.Dial("tcp4", ln.Addr().String())
			if err != nil {
				return err
			}
			local = c.LocalAddr().(*net.TCPAddr).IP.String()
			return c.Close()
		})
		return local, err
	}
	mustReach := func(what, from, want string) {
		t.Helper()
		got, err := dial(from)
		if err != nil || got != want {
			t.Fatalf("%s: dial from %q = %q, %v; want a connection from %s", what, from, got, err, want)
		}
	}
	mustNotReach := func(what, from string) {
		t.Helper()
		if got, err := dial(from); err == nil {
			t.Fatalf("%s: dial from %q connected (from %s); want it dropped", what, from, got)
		} else if ne := (net.Error)(nil); !errors.As(err, &ne) || !ne.Timeout() {
			t.Logf("%s: %v", what, err)
		}
	}

	mustReach("at first", "", wifiViewer)
	mustNotReach("at first, from the LTE address", lteViewer)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := tp.lose(ctx, wifi, lte); err != nil {
		t.Fatal(err)
	}
	mustReach("after wifi is lost", "", lteViewer)
	if err := tp.restore(ctx, wifi); err != nil {
		t.Fatal(err)
	}
	mustReach("wifi back, route still on lte", "", lteViewer)
	mustNotReach("wifi back, from the Wi-Fi address", wifiViewer)
	if err := tp.lose(ctx, lte, wifi); err != nil {
		t.Fatal(err)
	}
	mustReach("after lte is lost", "", wifiViewer)

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
	mustReach("after the fade", "", wifiViewer)
}
