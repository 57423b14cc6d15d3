package kvsemu

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestMaxViewers: the 11th viewer is refused with ClientLimitExceeded; a
// viewer reusing a connected id replaces instead of counting.
func TestMaxViewers(t *testing.T) {
	emu := startEmu(t, func(c *Config) { c.Limits.ViewerConnectsPerSecond = -1 })
	arn := mustChannel(t, emu, "cam", 0)
	for i := range 10 {
		dial(t, emu, arn, fmt.Sprintf("viewer-%d", i))
	}
	if got := dialStatus(t, emu, arn, "viewer-10"); got != http.StatusBadRequest {
		t.Errorf("11th viewer status = %d, want 400", got)
	}
	if got := dialStatus(t, emu, arn, "viewer-3"); got != 0 {
		t.Errorf("viewer-3 again status = %d, want accepted (replaces)", got)
	}
	c := emu.Counters()
	if c.Connects["VIEWER"] != 11 || c.Connects["VIEWER_REFUSED"] != 1 {
		t.Errorf("Connects = %v, want VIEWER 11, VIEWER_REFUSED 1", c.Connects)
	}
	// The refusal carries the KVS error body.
	u, _ := emu.PresignViewerURL(arn, "viewer-11")
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, strings.Replace(u, "wss://", "https://", 1), nil)
	for k, v := range map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="} {
		req.Header.Set(k, v)
	}
	client := emu.HTTPClient()
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("X-Amzn-ErrorType") != codeClientLimit {
		t.Errorf("refused upgrade = %d %s, want 400 %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), codeClientLimit)
	}
}

// TestConnectRate: ConnectAsViewer and ConnectAsMaster 3/s per channel, on
// a frozen clock.
func TestConnectRate(t *testing.T) {
	tests := []struct {
		name   string
		viewer bool
	}{
		{"viewer", true},
		{"master", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			emu := startEmu(t, func(c *Config) { c.Now = clock.Now })
			arn := mustChannel(t, emu, "cam", 0)
			id := func(i int) string {
				if tt.viewer {
					return fmt.Sprintf("v%d", i)
				}
				return ""
			}
			for i := range 3 {
				if got := dialStatus(t, emu, arn, id(i)); got != 0 {
					t.Fatalf("connect %d status = %d, want accepted", i+1, got)
				}
			}
			if got := dialStatus(t, emu, arn, id(3)); got != http.StatusBadRequest {
				t.Errorf("4th connect within a second = %d, want 400", got)
			}
			other := mustChannel(t, emu, "other", 0)
			if got := dialStatus(t, emu, other, id(4)); got != 0 {
				t.Errorf("connect on another channel = %d, want accepted (limit is per channel)", got)
			}
			clock.Advance(time.Second)
			if got := dialStatus(t, emu, arn, id(5)); got != 0 {
				t.Errorf("connect a second later = %d, want accepted", got)
			}
		})
	}
}

// TestMessageLimits: payload size and SDP/ICE rates per connection, with
// STATUS_RESPONSE when a correlationId is given and silent drops otherwise.
func TestMessageLimits(t *testing.T) {
	clock := newFakeClock()
	emu := startEmu(t, func(c *Config) {
		c.Now = clock.Now
		c.Limits.MaxPayload = 100
	})
	arn := mustChannel(t, emu, "cam", 0)
	master := dial(t, emu, arn, "")
	v := dial(t, emu, arn, "v1")

	// Payload: 100 bytes pass, 101 bytes are refused.
	send(t, v, msg("ICE_CANDIDATE", strings.Repeat("A", 100), "", "ok-100"))
	if got := read(t, master); got.MessageType != "ICE_CANDIDATE" {
		t.Fatalf("master got %s, want the 100-byte candidate", got.raw)
	}
	send(t, v, msg("ICE_CANDIDATE", strings.Repeat("A", 101), "", "big"))
	got := read(t, v)
	if got.StatusResponse == nil || got.StatusResponse.CorrelationID != "big" || got.StatusResponse.ErrorType != codeInvalidArgument {
		t.Errorf("oversize payload answer = %s, want STATUS_RESPONSE InvalidArgumentException big", got.raw)
	}

	// SDP: 5 per second per connection (the clock is frozen).
	for i := range 5 {
		send(t, v, msg("SDP_OFFER", b64(fmt.Sprint("o", i)), "", ""))
		if got := read(t, master); got.MessageType != "SDP_OFFER" {
			t.Fatalf("offer %d: master got %s", i, got.raw)
		}
	}
	send(t, v, msg("SDP_OFFER", b64("o6"), "", "sdp-6"))
	if got := read(t, v); got.StatusResponse == nil || got.StatusResponse.ErrorType != codeClientLimit || got.StatusResponse.CorrelationID != "sdp-6" {
		t.Errorf("6th offer answer = %s, want STATUS_RESPONSE ClientLimitExceededException sdp-6", got.raw)
	}
	send(t, v, msg("SDP_OFFER", b64("o7"), "", "")) // silently dropped

	// ICE: 20 per second per connection; one was used above.
	for i := range 19 {
		send(t, v, msg("ICE_CANDIDATE", b64(fmt.Sprint("c", i)), "", ""))
		if got := read(t, master); got.MessageType != "ICE_CANDIDATE" {
			t.Fatalf("candidate %d: master got %s", i, got.raw)
		}
	}
	send(t, v, msg("ICE_CANDIDATE", b64("c21"), "", "ice-21"))
	if got := read(t, v); got.StatusResponse == nil || got.StatusResponse.ErrorType != codeClientLimit || got.StatusResponse.CorrelationID != "ice-21" {
		t.Errorf("21st candidate answer = %s, want STATUS_RESPONSE ClientLimitExceededException ice-21", got.raw)
	}

	// Another connection has its own buckets; a second later ours refills.
	v2 := dial(t, emu, arn, "v2")
	send(t, v2, msg("SDP_OFFER", b64("v2"), "", ""))
	if got := read(t, master); got.SenderClientID != "v2" {
		t.Errorf("master got %s, want v2's offer", got.raw)
	}
	clock.Advance(time.Second)
	send(t, v, msg("SDP_OFFER", b64("later"), "", ""))
	if got := read(t, master); got.MessageType != "SDP_OFFER" || got.SenderClientID != "v1" {
		t.Errorf("master got %s, want v1's offer after a second", got.raw)
	}
	d := emu.Counters().Dropped
	for key, want := range map[string]int64{
		"viewer->master:ICE_CANDIDATE:oversize":  1,
		"viewer->master:SDP_OFFER:throttled":     2,
		"viewer->master:ICE_CANDIDATE:throttled": 1,
	} {
		if d[key] != want {
			t.Errorf("Dropped[%q] = %d, want %d", key, d[key], want)
		}
	}
}

// TestNewestConnectionWins for the master and for a viewer client id.
func TestNewestConnectionWins(t *testing.T) {
	emu := startEmu(t, nil)
	arn := mustChannel(t, emu, "cam", 0)

	oldMaster := dial(t, emu, arn, "")
	v := dial(t, emu, arn, "v1")
	newMaster := dial(t, emu, arn, "")
	if code, reason := closeStatus(t, oldMaster, 10*time.Second); code != websocket.StatusNormalClosure {
		t.Errorf("old master closed with %d %q, want 1000", code, reason)
	}
	send(t, v, msg("SDP_OFFER", b64("o"), "", ""))
	if got := read(t, newMaster); got.SenderClientID != "v1" {
		t.Errorf("new master got %s, want v1's offer", got.raw)
	}

	newV := dial(t, emu, arn, "v1")
	if code, reason := closeStatus(t, v, 10*time.Second); code != websocket.StatusNormalClosure {
		t.Errorf("old viewer closed with %d %q, want 1000", code, reason)
	}
	send(t, newMaster, msg("SDP_ANSWER", b64("a"), "v1", ""))
	if got := read(t, newV); got.MessageType != "SDP_ANSWER" {
		t.Errorf("new viewer got %s, want the answer", got.raw)
	}
	c := emu.Counters().Connects
	if c["MASTER_REPLACED"] != 1 || c["VIEWER_REPLACED"] != 1 {
		t.Errorf("Connects = %v, want one MASTER_REPLACED and one VIEWER_REPLACED", c)
	}
}

// TestMessageTTL: messages for an absent master wait MessageTtlSeconds, a
// newer offer from the same viewer overwrites an undelivered one, and
// expired messages are dropped.
func TestMessageTTL(t *testing.T) {
	clock := newFakeClock()
	emu := startEmu(t, func(c *Config) { c.Now = clock.Now })
	arn := mustChannel(t, emu, "cam", 10*time.Second)

	v1 := dial(t, emu, arn, "v1")
	v2 := dial(t, emu, arn, "v2")
	send(t, v1, msg("SDP_OFFER", b64("old"), "", ""))
	send(t, v1, msg("SDP_OFFER", b64("new"), "", ""))
	send(t, v1, msg("ICE_CANDIDATE", b64("c1"), "", ""))
	send(t, v2, msg("SDP_OFFER", b64("v2"), "", ""))
	waitRecords(t, emu, arn, 4)
	clock.Advance(5 * time.Second)
	send(t, v2, msg("ICE_CANDIDATE", b64("late"), "", ""))
	waitRecords(t, emu, arn, 5)
	clock.Advance(6 * time.Second) // v1's messages and v2's offer are now 11 s old

	master := dial(t, emu, arn, "")
	// Only v2's candidate (6 s old) survived; the master's first frame is it.
	if got := read(t, master); got.SenderClientID != "v2" || got.MessagePayload != b64("late") {
		t.Errorf("master's first frame = %s, want v2's late candidate", got.raw)
	}

	// Within the TTL, queued messages are delivered in order with the newest
	// offer only.
	master.CloseNow()
	waitMasterGone(t, emu, arn)
	send(t, v1, msg("SDP_OFFER", b64("first"), "", ""))
	send(t, v1, msg("SDP_OFFER", b64("second"), "", ""))
	send(t, v1, msg("ICE_CANDIDATE", b64("cand"), "", ""))
	waitRecords(t, emu, arn, 8)
	clock.Advance(9 * time.Second)
	master = dial(t, emu, arn, "")
	if got := read(t, master); got.MessagePayload != b64("second") {
		t.Errorf("master got %s, want the newest offer", got.raw)
	}
	if got := read(t, master); got.MessagePayload != b64("cand") {
		t.Errorf("master got %s, want the candidate", got.raw)
	}

	var expired, overwritten int
	for _, r := range emu.Messages(arn) {
		switch r.Dropped {
		case "expired":
			expired++
		case "overwritten":
			overwritten++
		}
	}
	if expired != 3 || overwritten != 2 {
		t.Errorf("Messages(): %d expired, %d overwritten, want 3 and 2", expired, overwritten)
	}
}

// waitRecords waits until the channel's message log has n records (the
// emulator handles frames asynchronously).
func waitRecords(t *testing.T, emu *Emulator, arn string, n int) {
	t.Helper()
	eventually(t, func() bool { return len(emu.Messages(arn)) >= n }, "message log reaches %d records", n)
}

func waitMasterGone(t *testing.T, emu *Emulator, arn string) {
	t.Helper()
	eventually(t, func() bool {
		for _, ch := range emu.Channels() {
			if ch.ARN == arn {
				return !ch.MasterConnected
			}
		}
		return true
	}, "master disconnects")
}

// eventually polls cond until it holds, for at most 10 s.
func eventually(t *testing.T, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: "+format, args...)
		}
		<-tick.C
	}
}

// TestIdleTimeout: no signaling message for IdleTimeout closes the socket
// with 1001; pings do not count, messages do.
func TestIdleTimeout(t *testing.T) {
	const idle = time.Second
	emu := startEmu(t, func(c *Config) { c.Limits.IdleTimeout = idle })
	arn := mustChannel(t, emu, "cam", 0)

	// Pings only: closed IdleTimeout after connecting.
	ws := dial(t, emu, arn, "v1")
	start := time.Now()
	type closed struct {
		code   websocket.StatusCode
		reason string
		at     time.Time
	}
	closedCh := make(chan closed, 1)
	go func() { // the reader pings need
		code, reason := waitClosed(t.Context(), ws)
		closedCh <- closed{code, reason, time.Now()}
	}()
	for range 3 {
		if err := ws.Ping(t.Context()); err != nil {
			t.Fatalf("Ping() = %v", err)
		}
	}
	c := <-closedCh
	if c.code != websocket.StatusGoingAway || c.reason != "idle timeout" {
		t.Errorf("closed with %d %q, want 1001 idle timeout", c.code, c.reason)
	}
	if el := c.at.Sub(start); el < idle-50*time.Millisecond {
		t.Errorf("closed after %v, want >= the %v idle timeout", el, idle)
	}

	// A message resets the timer: the close comes IdleTimeout after the
	// message, not after the connect.
	ws2 := dial(t, emu, arn, "v2")
	pause := time.NewTimer(idle * 2 / 5)
	<-pause.C
	sent := time.Now()
	send(t, ws2, msg("ICE_CANDIDATE", b64("c"), "", ""))
	if code, _ := closeStatus(t, ws2, 10*time.Second); code != websocket.StatusGoingAway {
		t.Errorf("closed with %d, want 1001", code)
	}
	if el := time.Since(sent); el < idle-50*time.Millisecond {
		t.Errorf("closed %v after the last message, want >= %v (the message must reset the idle timer)", el, idle)
	}
}

// TestMaxConnection: GO_AWAY GoAwayBefore ahead of MaxConnection, then 1001.
func TestMaxConnection(t *testing.T) {
	emu := startEmu(t, func(c *Config) {
		c.Limits.MaxConnection = 600 * time.Millisecond
		c.Limits.GoAwayBefore = 300 * time.Millisecond
	})
	arn := mustChannel(t, emu, "cam", 0)
	ws := dial(t, emu, arn, "v1")
	start := time.Now()
	if got := read(t, ws); got.MessageType != "GO_AWAY" || got.raw != `{"messageType":"GO_AWAY"}` {
		t.Errorf("first frame = %s, want GO_AWAY", got.raw)
	}
	goAway := time.Since(start)
	code, reason := closeStatus(t, ws, 10*time.Second)
	closed := time.Since(start)
	if code != websocket.StatusGoingAway || reason != "maximum connection duration" {
		t.Errorf("closed with %d %q, want 1001 maximum connection duration", code, reason)
	}
	if goAway < 150*time.Millisecond || closed < 450*time.Millisecond || closed-goAway < 100*time.Millisecond {
		t.Errorf("GO_AWAY after %v, close after %v; want about 300ms and 600ms", goAway, closed)
	}
	if got := emu.Counters().Messages["service->viewer:GO_AWAY"]; got != 1 {
		t.Errorf("Messages[service->viewer:GO_AWAY] = %d, want 1", got)
	}
}

// TestDeleteChannelCloses: deleting a channel closes its connections with
// 1001 and later connects get 404.
func TestDeleteChannelCloses(t *testing.T) {
	emu := startEmu(t, nil)
	arn := mustChannel(t, emu, "cam", 0)
	master := dial(t, emu, arn, "")
	v := dial(t, emu, arn, "v1")
	if err := emu.DeleteChannel(arn); err != nil {
		t.Fatal(err)
	}
	for _, ws := range []*websocket.Conn{master, v} {
		if code, reason := closeStatus(t, ws, 10*time.Second); code != websocket.StatusGoingAway || reason != "channel deleted" {
			t.Errorf("closed with %d %q, want 1001 channel deleted", code, reason)
		}
	}
	if got := dialStatus(t, emu, arn, "v1"); got != http.StatusNotFound {
		t.Errorf("connect to a deleted channel = %d, want 404", got)
	}
	if _, err := emu.CreateChannel("cam", 0); err != nil {
		t.Errorf("CreateChannel(same name after delete) = %v, want nil", err)
	}
}
