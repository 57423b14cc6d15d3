package kvsemu

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/acme/viewersession/kvsemu/camera"
)

// TestFaultGoAway: an injected GO_AWAY, then the close GoAwayBefore later,
// for a viewer and for the master.
func TestFaultGoAway(t *testing.T) {
	const grace = 200 * time.Millisecond
	emu := startEmu(t, func(c *Config) { c.Limits.GoAwayBefore = grace })
	arn := mustChannel(t, emu, "cam", 0)
	tests := []struct {
		name     string
		clientID string
	}{
		{"viewer", "v1"},
		{"master", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := dial(t, emu, arn, tt.clientID)
			sent := time.Now()
			if err := emu.SendGoAway(arn, tt.clientID); err != nil {
				t.Fatalf("SendGoAway() = %v", err)
			}
			if got := read(t, ws); got.MessageType != "GO_AWAY" {
				t.Errorf("got %s, want GO_AWAY", got.raw)
			}
			code, _ := closeStatus(t, ws, 10*time.Second)
			if code != websocket.StatusGoingAway {
				t.Errorf("closed with %d, want 1001", code)
			}
			if el := time.Since(sent); el < grace {
				t.Errorf("closed %v after GO_AWAY, want >= %v", el, grace)
			}
		})
	}
	if err := emu.SendGoAway(arn, "absent"); !errors.Is(err, ErrNotConnected) {
		t.Errorf("SendGoAway(absent) = %v, want ErrNotConnected", err)
	}
	if err := emu.SendGoAway(arn+"x", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("SendGoAway(unknown channel) = %v, want ErrNotFound", err)
	}
}

// TestFaultReconnectICEServer sends RECONNECT_ICE_SERVER and keeps the
// connection open.
func TestFaultReconnectICEServer(t *testing.T) {
	emu := startEmu(t, nil)
	arn := mustChannel(t, emu, "cam", 0)
	master := dial(t, emu, arn, "")
	v := dial(t, emu, arn, "v1")
	if err := emu.SendReconnectICEServer(arn, "v1"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, v); got.raw != `{"messageType":"RECONNECT_ICE_SERVER"}` {
		t.Errorf("got %s, want RECONNECT_ICE_SERVER", got.raw)
	}
	send(t, v, msg("SDP_OFFER", b64("o"), "", ""))
	if got := read(t, master); got.MessageType != "SDP_OFFER" {
		t.Errorf("master got %s, want the offer (connection still open)", got.raw)
	}
}

// TestFaultDropViewer closes a viewer abruptly, without a close frame.
func TestFaultDropViewer(t *testing.T) {
	emu := startEmu(t, nil)
	arn := mustChannel(t, emu, "cam", 0)
	v := dial(t, emu, arn, "v1")
	dial(t, emu, arn, "v2")
	if err := emu.DropViewer(arn, "v1"); err != nil {
		t.Fatal(err)
	}
	if code, reason := closeStatus(t, v, 10*time.Second); code != -1 {
		t.Errorf("dropped viewer saw close %d %q, want an abrupt end", code, reason)
	}
	eventually(t, func() bool { return len(emu.Channels()[0].Viewers) == 1 }, "v1 unregistered")
	if got := emu.Channels()[0].Viewers; got[0] != "v2" {
		t.Errorf("viewers = %v, want [v2]", got)
	}
}

// TestFaultThrottle: the next n calls of an operation fail with
// ClientLimitExceededException, then calls succeed again.
func TestFaultThrottle(t *testing.T) {
	emu := startEmu(t, nil)
	arn := mustChannel(t, emu, "cam", 0)
	post := func(path string, body any) func() int {
		return func() int {
			resp, _ := signedPost(t, emu, path, body, emu.cfg.SecretAccessKey, time.Now())
			if resp.StatusCode == http.StatusBadRequest && resp.Header.Get("X-Amzn-ErrorType") != codeClientLimit {
				t.Errorf("%s: 400 %s, want ClientLimitExceededException", path, resp.Header.Get("X-Amzn-ErrorType"))
			}
			return resp.StatusCode
		}
	}
	tests := []struct {
		op   string
		call func() int // returns the HTTP status
	}{
		{OpDescribeSignalingChannel, post("/describeSignalingChannel", map[string]string{"ChannelARN": arn})},
		{OpGetSignalingChannelEndpoint, post("/getSignalingChannelEndpoint", map[string]string{"ChannelARN": arn})},
		{OpGetIceServerConfig, post("/v1/get-ice-server-config", map[string]string{"ChannelARN": arn})},
		{OpCreateSignalingChannel, post("/createSignalingChannel", map[string]string{"ChannelName": "new"})},
		{OpConnectAsViewer, func() int { return statusOr200(dialStatus(t, emu, arn, "v1")) }},
		{OpConnectAsMaster, func() int { return statusOr200(dialStatus(t, emu, arn, "")) }},
		{OpDeleteSignalingChannel, post("/deleteSignalingChannel", map[string]string{"ChannelARN": arn})},
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			emu.Throttle(tt.op, 2)
			for i := range 2 {
				if got := tt.call(); got != http.StatusBadRequest {
					t.Errorf("throttled call %d = %d, want 400", i+1, got)
				}
			}
			if got := tt.call(); got != http.StatusOK {
				t.Errorf("call after the throttle = %d, want 200", got)
			}
		})
	}
}

func statusOr200(status int) int {
	if status == 0 {
		return http.StatusOK
	}
	return status
}

// cameraChannel starts an emulator with a camera on channel "cam".
func cameraChannel(t *testing.T, mode camera.Mode) (*Emulator, string) {
	t.Helper()
	emu := startEmu(t, nil)
	arn := mustChannel(t, emu, "cam", 0)
	if err := emu.StartCamera(arn, mode); err != nil {
		t.Fatalf("StartCamera() = %v", err)
	}
	eventually(t, func() bool { return emu.Channels()[0].MasterConnected }, "camera connects")
	return emu, arn
}

// answersTo counts SDP answers the emulator routed to a viewer.
func answersTo(emu *Emulator, arn, clientID string) int {
	n := 0
	for _, r := range emu.Messages(arn) {
		if r.Type == "SDP_ANSWER" && r.From == "master" && r.ClientID == clientID {
			n++
		}
	}
	return n
}

func TestCameraFaultNoAnswer(t *testing.T) {
	emu, arn := cameraChannel(t, camera.CSample)
	if err := emu.SetCameraFault(arn, camera.Fault{NoAnswer: true}); err != nil {
		t.Fatal(err)
	}
	v := newPionViewer(t, emu, arn, "v1", nil, false)
	v.offer()
	eventually(t, func() bool {
		st, _ := emu.CameraStats(arn)
		return st.IgnoredOffers == 1
	}, "the camera ignores the offer")
	if n := answersTo(emu, arn, "v1"); n != 0 {
		t.Errorf("%d answers routed to v1, want none", n)
	}
	// Clearing the fault: a new viewer is answered.
	if err := emu.SetCameraFault(arn, camera.Fault{}); err != nil {
		t.Fatal(err)
	}
	v2 := newPionViewer(t, emu, arn, "v2", nil, false)
	v2.offer()
	v2.waitAnswer()
}

func TestCameraFaultLateAnswer(t *testing.T) {
	const delay = 700 * time.Millisecond
	emu, arn := cameraChannel(t, camera.JSSample)
	if err := emu.SetCameraFault(arn, camera.Fault{AnswerDelay: delay}); err != nil {
		t.Fatal(err)
	}
	v := newPionViewer(t, emu, arn, "v1", nil, false)
	sent := time.Now()
	v.offer()
	if el := v.waitAnswer().Sub(sent); el < delay {
		t.Errorf("answer after %v, want >= %v", el, delay)
	}
}

func TestCameraFaultAnswerFrom(t *testing.T) {
	emu, arn := cameraChannel(t, camera.CSample)
	if err := emu.SetCameraFault(arn, camera.Fault{AnswerFromOffer: 2}); err != nil {
		t.Fatal(err)
	}
	v1 := newPionViewer(t, emu, arn, "v1", nil, false)
	v1.offer()
	eventually(t, func() bool {
		st, _ := emu.CameraStats(arn)
		return st.IgnoredOffers == 1
	}, "the first offer is ignored")
	v2 := newPionViewer(t, emu, arn, "v2", nil, false)
	v2.offer()
	v2.waitAnswer()
	if n := answersTo(emu, arn, "v1"); n != 0 {
		t.Errorf("%d answers routed to v1, want none", n)
	}
}

// TestCameraOffline: with the camera offline an offer waits in the channel
// (within MessageTtlSeconds) and is answered when the camera comes back.
func TestCameraOffline(t *testing.T) {
	emu, arn := cameraChannel(t, camera.CSample)
	if err := emu.StopCamera(arn); err != nil {
		t.Fatalf("StopCamera() = %v", err)
	}
	st := emu.Channels()[0]
	if st.MasterConnected || st.Camera.Running {
		t.Errorf("after StopCamera: %+v, want no master and no camera", st)
	}
	if err := emu.StopCamera(arn); !errors.Is(err, ErrNoCamera) {
		t.Errorf("StopCamera() again = %v, want ErrNoCamera", err)
	}
	v := newPionViewer(t, emu, arn, "v1", nil, false)
	v.offer()
	waitRecords(t, emu, arn, 1)
	if recs := emu.Messages(arn); recs[0].Delivered {
		t.Errorf("offer record %+v, want undelivered while the camera is offline", recs[0])
	}
	if err := emu.StartCamera(arn, ""); err != nil {
		t.Fatalf("StartCamera() = %v", err)
	}
	v.waitAnswer()
	v.waitPackets(5)
}
