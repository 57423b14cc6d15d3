package kvsemu

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsv4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/acme/viewersession/kvsemu/sigv4"
)

// TestConnectAuth is acceptance 2's emulator half: presigned URLs from our
// signer and from aws-sdk-go-v2's are accepted; tampered, expired, unsigned
// or foreign-key URLs get 403.
func TestConnectAuth(t *testing.T) {
	emu := startEmu(t, nil)
	arn := mustChannel(t, emu, "cam", 0)
	base := emu.WSSEndpoint() + "/?X-Amz-ChannelARN=" + url.QueryEscape(arn) + "&X-Amz-ClientId=viewer-1"
	creds := emu.Credentials()
	presign := func(at time.Time, c sigv4.Credentials) string {
		u, err := sigv4.PresignURL(base, c, emu.Region(), signingService, at, 0)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	awsPresigned := func() string {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"&X-Amz-Expires=299", nil)
		if err != nil {
			t.Fatal(err)
		}
		u, _, err := awsv4.NewSigner().PresignHTTP(t.Context(), aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey},
			req, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", signingService, emu.Region(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	otherKey := creds
	otherKey.SecretAccessKey = "not-the-secret"
	tests := []struct {
		name string
		give string
		want int // 0 = accepted
	}{
		{"our presign", presign(time.Now(), creds), 0},
		{"aws-sdk presign", awsPresigned(), 0},
		{"tampered client id", strings.Replace(presign(time.Now(), creds), "viewer-1", "viewer-2", 1), http.StatusForbidden},
		{"expired", presign(time.Now().Add(-6*time.Minute), creds), http.StatusForbidden},
		{"wrong secret", presign(time.Now(), otherKey), http.StatusForbidden},
		{"unsigned", base, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, status, err := dialErr(t, emu, tt.give)
			if tt.want == 0 {
				if err != nil {
					t.Fatalf("dial = %d %v, want accepted", status, err)
				}
				ws.CloseNow()
				return
			}
			if err == nil || status != tt.want {
				t.Errorf("dial = %d %v, want %d", status, err, tt.want)
			}
		})
	}
	if got := emu.Counters().Connects["VIEWER_REFUSED"]; got != 4 {
		t.Errorf("Connects[VIEWER_REFUSED] = %d, want 4", got)
	}
}

// TestConnectRefusals checks the non-auth refusals at the upgrade.
func TestConnectRefusals(t *testing.T) {
	emu := startEmu(t, nil)
	arn := mustChannel(t, emu, "cam", 0)
	tests := []struct {
		name     string
		arn      string
		clientID string
		want     int
	}{
		{"unknown channel", arn + "0", "v1", http.StatusNotFound},
		{"AWS_ prefix", arn, "aws_viewer", http.StatusBadRequest},
		{"bad characters", arn, "viewer one", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := dialStatus(t, emu, tt.arn, tt.clientID); got != tt.want {
				t.Errorf("dial(%q, %q) status = %d, want %d", tt.arn, tt.clientID, got, tt.want)
			}
		})
	}
}

// TestRouting covers section 2.2/2.3 routing and frame shapes, and
// acceptance 5: the C SDK's capitalised frame with an IceServerList routes
// like the JS SDK's.
func TestRouting(t *testing.T) {
	emu := startEmu(t, nil)
	arn := mustChannel(t, emu, "cam", 0)
	master := dial(t, emu, arn, "")
	v1 := dial(t, emu, arn, "viewer-1")
	v2 := dial(t, emu, arn, "viewer-2")
	offer := b64(`{"type":"offer","sdp":"v=0"}`)
	answer := b64(`{"type":"answer","sdp":"v=0"}`)

	// JS style; the recipient a viewer names is ignored.
	send(t, v1, msg("SDP_OFFER", offer, "someone-else", ""))
	got := read(t, master)
	want := `{"messagePayload":"` + offer + `","messageType":"SDP_OFFER","senderClientId":"viewer-1"}`
	if got.raw != want {
		t.Errorf("master got %s, want %s", got.raw, want)
	}

	// C SDK style: capitalised keys, pretty-printed, extra IceServerList.
	cFrame := "{\n\t\"action\": \"SDP_OFFER\",\n\t\"RecipientClientId\": \"ProducerMaster\",\n\t\"MessagePayload\": \"" + offer +
		"\",\n\t\"CorrelationId\": \"c-1\",\n\t\"IceServerList\": [{\"Password\": \"p\", \"Ttl\": 298, \"Uris\": [\"turn:x\"], \"Username\": \"u\"}]\n}"
	send(t, v2, cFrame)
	got = read(t, master)
	want = `{"messagePayload":"` + offer + `","messageType":"SDP_OFFER","senderClientId":"viewer-2"}`
	if got.raw != want {
		t.Errorf("master got %s for the C SDK frame, want %s", got.raw, want)
	}

	// Master -> the named viewer only, without senderClientId.
	send(t, master, msg("SDP_ANSWER", answer, "viewer-2", ""))
	got = read(t, v2)
	want = `{"messagePayload":"` + answer + `","messageType":"SDP_ANSWER"}`
	if got.raw != want {
		t.Errorf("viewer-2 got %s, want %s", got.raw, want)
	}
	// Master C-style answer to viewer-1.
	send(t, master, `{"action":"ICE_CANDIDATE","RecipientClientId":"viewer-1","MessagePayload":"`+b64(`{"candidate":"c"}`)+`"}`)
	if got = read(t, v1); got.MessageType != "ICE_CANDIDATE" || got.SenderClientID != "" {
		t.Errorf("viewer-1 got %s, want an ICE_CANDIDATE without senderClientId", got.raw)
	}

	// Foreign, unknown-key, binary-free garbage and empty frames are
	// ignored without a reply, and the connection keeps working.
	for _, f := range []string{
		`{"message":"Endpoint request timed out","connectionId":"x","requestId":"y"}`,
		`not json`,
		`[1,2]`,
		``,
	} {
		send(t, v1, f)
	}
	// Success is silent: no STATUS_RESPONSE for a good message with a
	// correlationId. The next frame viewer-1 sees is the answer below.
	send(t, v1, msg("ICE_CANDIDATE", b64(`{"candidate":"c"}`), "", "corr-ok"))
	if got = read(t, master); got.MessageType != "ICE_CANDIDATE" || got.SenderClientID != "viewer-1" {
		t.Errorf("master got %s, want viewer-1's candidate", got.raw)
	}
	send(t, master, msg("SDP_ANSWER", answer, "viewer-1", ""))
	if got = read(t, v1); got.MessageType != "SDP_ANSWER" {
		t.Errorf("viewer-1 got %s, want only the SDP_ANSWER (no status for success or foreign frames)", got.raw)
	}

	c := emu.Counters()
	for key, want := range map[string]int64{
		"viewer->master:SDP_OFFER":        2,
		"viewer->master:ICE_CANDIDATE":    1,
		"master->viewer:SDP_ANSWER":       2,
		"master->viewer:ICE_CANDIDATE":    1,
		"service->viewer:STATUS_RESPONSE": 0,
	} {
		if c.Messages[key] != want {
			t.Errorf("Counters().Messages[%q] = %d, want %d", key, c.Messages[key], want)
		}
	}
	var offers int
	for _, r := range emu.Messages(arn) {
		if r.Type == "SDP_OFFER" && r.From == "viewer" && r.Delivered {
			offers++
		}
	}
	if offers != 2 {
		t.Errorf("Messages() has %d delivered offers, want 2", offers)
	}
}

// TestStatusResponse checks that errors answer with STATUS_RESPONSE only
// when a correlationId was given.
func TestStatusResponse(t *testing.T) {
	emu := startEmu(t, nil)
	arn := mustChannel(t, emu, "cam", 0)
	master := dial(t, emu, arn, "")
	v1 := dial(t, emu, arn, "viewer-1")

	tests := []struct {
		name      string
		frame     string
		wantError string
	}{
		{"unknown action", msg("SDP_PRANSWER", b64("x"), "", "c1"), codeInvalidArgument},
		{"empty payload", msg("SDP_OFFER", "", "", "c2"), codeInvalidArgument},
		{"not base64", msg("SDP_OFFER", "%%%", "", "c3"), codeInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			send(t, v1, tt.frame)
			got := read(t, v1)
			var in struct{ CorrelationID string }
			_ = json.Unmarshal([]byte(tt.frame), &in)
			if got.MessageType != "STATUS_RESPONSE" || got.StatusResponse == nil ||
				got.StatusResponse.ErrorType != tt.wantError || got.StatusResponse.StatusCode != "400" ||
				got.StatusResponse.CorrelationID != in.CorrelationID {
				t.Errorf("got %s, want STATUS_RESPONSE %s 400 for %s", got.raw, tt.wantError, in.CorrelationID)
			}
		})
	}

	// Master without a recipient: an error with correlationId.
	send(t, master, msg("SDP_ANSWER", b64("x"), "", "m1"))
	if got := read(t, master); got.StatusResponse == nil || got.StatusResponse.CorrelationID != "m1" {
		t.Errorf("master got %s, want STATUS_RESPONSE for m1", got.raw)
	}
	// The same errors without correlationId: silence. The next frame the
	// viewer reads is a real answer.
	send(t, v1, msg("SDP_PRANSWER", b64("x"), "", ""))
	send(t, v1, msg("SDP_OFFER", "", "", ""))
	send(t, master, msg("SDP_ANSWER", b64("x"), "", ""))
	send(t, master, msg("SDP_ANSWER", b64("ok"), "viewer-1", ""))
	if got := read(t, v1); got.MessageType != "SDP_ANSWER" {
		t.Errorf("viewer-1 got %s, want the SDP_ANSWER (no STATUS_RESPONSE without correlationId)", got.raw)
	}
	if got := emu.Counters().Messages["service->viewer:STATUS_RESPONSE"]; got != 3 {
		t.Errorf("Messages[service->viewer:STATUS_RESPONSE] = %d, want 3", got)
	}
}

// TestPing checks that a client WebSocket ping is answered.
func TestPing(t *testing.T) {
	emu := startEmu(t, nil)
	arn := mustChannel(t, emu, "cam", 0)
	ws := dial(t, emu, arn, "viewer-1")
	// Ping needs a concurrent reader on the client to see the pong.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ws.CloseRead(ctx)
	pctx, pcancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer pcancel()
	if err := ws.Ping(pctx); err != nil {
		t.Errorf("Ping() = %v, want nil", err)
	}
}
