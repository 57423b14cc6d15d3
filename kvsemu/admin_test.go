package kvsemu

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// admin calls the admin API and decodes the JSON answer into out.
func admin(t *testing.T, emu *Emulator, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, emu.AdminURL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	client := emu.HTTPClient()
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %s: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

func TestAdminAPI(t *testing.T) {
	emu := startEmu(t, func(c *Config) { c.Limits.GoAwayBefore = time.Minute })

	var created struct {
		ChannelARN string `json:"channelArn"`
	}
	if got := admin(t, emu, "POST", "/channels", map[string]any{"name": "door", "messageTtlSeconds": 30, "camera": "js-sample"}, &created); got != 200 || created.ChannelARN == "" {
		t.Fatalf("POST /channels = %d %+v", got, created)
	}
	arn := created.ChannelARN
	eventually(t, func() bool { return emu.Channels()[0].MasterConnected }, "camera connects")

	var chans struct{ Channels []ChannelState }
	admin(t, emu, "GET", "/channels", nil, &chans)
	if len(chans.Channels) != 1 || chans.Channels[0].ARN != arn || chans.Channels[0].MessageTTLSeconds != 30 ||
		!chans.Channels[0].MasterConnected || chans.Channels[0].Camera == nil || !chans.Channels[0].Camera.Running ||
		chans.Channels[0].Camera.Mode != "js-sample" {
		t.Errorf("GET /channels = %+v, want door with a running js-sample camera", chans)
	}

	// Faults over HTTP.
	v := dial(t, emu, arn, "v1")
	tests := []struct {
		name string
		give FaultRequest
		want int
	}{
		{"no-answer", FaultRequest{ChannelARN: arn, Fault: "no-answer"}, 200},
		{"late-answer", FaultRequest{ChannelARN: arn, Fault: "late-answer", DelayMs: 250}, 200},
		{"answer-from", FaultRequest{ChannelARN: arn, Fault: "answer-from", N: 3}, 200},
		{"reconnect-ice-server", FaultRequest{ChannelARN: arn, Fault: "reconnect-ice-server", ClientID: "v1"}, 200},
		{"go-away", FaultRequest{ChannelARN: arn, Fault: "go-away", ClientID: "v1"}, 200},
		{"throttle", FaultRequest{Fault: "throttle", Op: OpDescribeSignalingChannel, N: 1}, 200},
		{"throttle bad op", FaultRequest{Fault: "throttle", Op: "ListStreams", N: 1}, 400},
		{"unknown fault", FaultRequest{ChannelARN: arn, Fault: "meteor"}, 400},
		{"unknown channel", FaultRequest{ChannelARN: arn + "x", Fault: "no-answer"}, 404},
		{"absent viewer", FaultRequest{ChannelARN: arn, Fault: "drop-viewer", ClientID: "nobody"}, 409},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out map[string]any
			if got := admin(t, emu, "POST", "/faults", tt.give, &out); got != tt.want {
				t.Errorf("POST /faults %+v = %d %v, want %d", tt.give, got, out, tt.want)
			}
		})
	}
	admin(t, emu, "GET", "/channels", nil, &chans)
	if f := chans.Channels[0].Camera.Fault; !f.NoAnswer || f.AnswerDelayMs != 250 || f.AnswerFromOffer != 3 {
		t.Errorf("camera fault = %+v, want all three set", f)
	}
	if got := read(t, v); got.MessageType != "RECONNECT_ICE_SERVER" {
		t.Errorf("viewer got %s, want RECONNECT_ICE_SERVER", got.raw)
	}
	if got := read(t, v); got.MessageType != "GO_AWAY" {
		t.Errorf("viewer got %s, want GO_AWAY", got.raw)
	}
	if resp, _ := signedPost(t, emu, "/describeSignalingChannel", map[string]string{"ChannelARN": arn}, emu.cfg.SecretAccessKey, time.Now()); resp.StatusCode != 400 {
		t.Errorf("describe after throttle fault = %d, want 400", resp.StatusCode)
	}

	var ok map[string]bool
	admin(t, emu, "POST", "/faults", FaultRequest{ChannelARN: arn, Fault: "clear"}, &ok)
	admin(t, emu, "GET", "/channels", nil, &chans)
	if f := chans.Channels[0].Camera.Fault; f != (FaultState{}) {
		t.Errorf("camera fault after clear = %+v, want none", f)
	}
	admin(t, emu, "POST", "/faults", FaultRequest{ChannelARN: arn, Fault: "camera-offline"}, &ok)
	admin(t, emu, "GET", "/channels", nil, &chans)
	if c := chans.Channels[0]; c.MasterConnected || c.Camera.Running {
		t.Errorf("after camera-offline: %+v, want no master", c)
	}
	admin(t, emu, "POST", "/faults", FaultRequest{ChannelARN: arn, Fault: "camera-online", Mode: "c-sample"}, &ok)
	eventually(t, func() bool { return emu.Channels()[0].MasterConnected }, "camera reconnects")
	admin(t, emu, "POST", "/faults", FaultRequest{ChannelARN: arn, Fault: "drop-viewer", ClientID: "v1"}, &ok)
	if code, _ := closeStatus(t, v, 10*time.Second); code != -1 {
		t.Errorf("dropped viewer closed with %d, want abrupt", code)
	}

	var counters Counters
	if got := admin(t, emu, "GET", "/counters", nil, &counters); got != 200 {
		t.Fatalf("GET /counters = %d", got)
	}
	if counters.Calls[OpDescribeSignalingChannel] != 1 || counters.Connects["VIEWER"] != 1 || counters.Connects["MASTER"] < 2 ||
		counters.Messages["service->viewer:GO_AWAY"] != 1 {
		t.Errorf("GET /counters = %+v", counters)
	}
	var msgs struct{ Messages []MessageRecord }
	if got := admin(t, emu, "GET", "/messages?channelArn="+arn, nil, &msgs); got != 200 || len(msgs.Messages) != 2 {
		t.Errorf("GET /messages = %d %+v, want the two service messages", got, msgs)
	}
	if got := admin(t, emu, "GET", "/messages?channelArn=nope", nil, nil); got != 404 {
		t.Errorf("GET /messages for an unknown channel = %d, want 404", got)
	}

	req, _ := http.NewRequestWithContext(t.Context(), "GET", emu.AdminURL()+"/ca.pem", nil)
	client := emu.HTTPClient()
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(pem, emu.CACertPEM()) {
		t.Errorf("GET /ca.pem differs from CACertPEM()")
	}
}
