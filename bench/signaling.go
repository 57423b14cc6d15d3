package bench

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
	"google.golang.org/grpc"

	"github.com/acme/viewersession/kvsemu"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// offerSlots is how many distinct offers a run uses: one per viewer slot
// of a channel (KVS allows 10 viewers per channel).
const offerSlots = 10

// makeOffers returns n real pion SDP offers (a receive-only video
// transceiver, no candidates), each from its own peer connection, which is
// closed at once: the offers are reused, the peers are not needed.
func makeOffers(n int) ([]string, error) {
	out := make([]string, 0, n)
	for range n {
		pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			return nil, err
		}
		_, err = pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
		var offer webrtc.SessionDescription
		if err == nil {
			offer, err = pc.CreateOffer(nil)
		}
		if cerr := pc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("pion offer: %w", err)
		}
		out = append(out, offer.SDP)
	}
	return out, nil
}

// offerFrame is a viewer's SDP_OFFER frame as the KVS JS SDK writes it.
func offerFrame(sdp string) []byte {
	payload, _ := json.Marshal(struct {
		SDP  string `json:"sdp"`
		Type string `json:"type"`
	}{sdp, "offer"})
	frame, _ := json.Marshal(struct {
		Action  string `json:"action"`
		Payload string `json:"messagePayload"`
	}{"SDP_OFFER", base64.StdEncoding.EncodeToString(payload)})
	return frame
}

// dialViewer opens a viewer's signaling WebSocket straight on the
// emulator, retrying while the emulator refuses the connect rate.
func dialViewer(ctx context.Context, emu *kvsemu.Emulator, hc *http.Client, arn, clientID string) (*websocket.Conn, error) {
	delay := 20 * time.Millisecond
	for {
		u, err := emu.PresignViewerURL(arn, clientID)
		if err != nil {
			return nil, err
		}
		ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: hc})
		if err == nil {
			return ws, nil
		}
		if resp == nil || resp.StatusCode != http.StatusBadRequest {
			return nil, fmt.Errorf("dial viewer %s: %w", clientID, err)
		}
		t := time.NewTimer(delay) // ClientLimitExceededException: back off
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

// rawOfferAnswer sends frame on a viewer socket and returns the time until
// the SDP_ANSWER frame arrives.
func rawOfferAnswer(ctx context.Context, ws *websocket.Conn, frame []byte) (time.Duration, error) {
	start := time.Now()
	if err := ws.Write(ctx, websocket.MessageText, frame); err != nil {
		return 0, err
	}
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return 0, err
		}
		var m struct {
			MessageType string `json:"messageType"`
		}
		if json.Unmarshal(data, &m) == nil && m.MessageType == "SDP_ANSWER" {
			return time.Since(start), nil
		}
	}
}

// app is a thin app on a Connect stream, driven by hand: no peer
// connection, signaling only.
type app struct {
	stream   grpc.BidiStreamingClient[vspb.ConnectRequest, vspb.ConnectResponse]
	cancel   context.CancelFunc
	name     string
	clientID string
	events   []*vspb.SessionEvent
}

// join opens Connect for a created session and reads its timeline until
// the session awaits the offer (its signaling is open).
func (s *Stack) join(ctx context.Context, cs *vspb.CreateSessionResponse) (*app, error) {
	return joinOn(ctx, s.client(), cs)
}

// joinOn is join on the service api.
func joinOn(ctx context.Context, api vspb.ViewerSessionServiceClient, cs *vspb.CreateSessionResponse) (*app, error) {
	sctx, cancel := context.WithCancel(withToken(ctx, cs.GetSessionToken()))
	stream, err := api.Connect(sctx)
	if err != nil {
		cancel()
		return nil, err
	}
	a := &app{stream: stream, cancel: cancel, name: cs.GetSession().GetName(), clientID: cs.GetSession().GetClientId()}
	if err := stream.Send(&vspb.ConnectRequest{Message: &vspb.ConnectRequest_Join{Join: &vspb.Join{Name: a.name}}}); err != nil {
		cancel()
		return nil, err
	}
	if _, err := a.until(func(m *vspb.ConnectResponse) bool {
		return m.GetEvent().GetState() == vspb.SessionState_SESSION_STATE_AWAITING_OFFER
	}); err != nil {
		cancel()
		return nil, fmt.Errorf("join %s: %w", a.name, err)
	}
	return a, nil
}

// until reads the stream until match, keeping the events it reads.
func (a *app) until(match func(*vspb.ConnectResponse) bool) (*vspb.ConnectResponse, error) {
	for {
		m, err := a.stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the stream ended")
		}
		if err != nil {
			return nil, err
		}
		if e := m.GetEvent(); e != nil {
			a.events = append(a.events, e)
		}
		if match(m) {
			return m, nil
		}
	}
}

// send sends an offer on the stream.
func (a *app) offer(sdp string) error {
	return a.stream.Send(&vspb.ConnectRequest{Message: &vspb.ConnectRequest_Offer{Offer: &vspb.SessionDescription{Sdp: sdp}}})
}

// offerAnswer sends sdp and returns the time until the answer arrives.
func (a *app) offerAnswer(sdp string) (time.Duration, error) {
	start := time.Now()
	if err := a.offer(sdp); err != nil {
		return 0, err
	}
	if _, err := a.until(func(m *vspb.ConnectResponse) bool { return m.GetAnswer() != nil }); err != nil {
		return 0, fmt.Errorf("waiting for the answer: %w", err)
	}
	return time.Since(start), nil
}

// leave ends the session (CLIENT_LEFT) and reads the stream to its end.
func (a *app) leave() error {
	defer a.cancel()
	if err := a.stream.Send(&vspb.ConnectRequest{Message: &vspb.ConnectRequest_Leave{Leave: &vspb.Leave{}}}); err != nil {
		return err
	}
	_ = a.stream.CloseSend()
	return a.drain()
}

// drain reads the stream to its end and returns its final status (nil for
// OK).
func (a *app) drain() error {
	for {
		m, err := a.stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if e := m.GetEvent(); e != nil {
			a.events = append(a.events, e)
		}
	}
}

// turnarounds returns, by viewer clientId, the camera's turnaround seen at
// the emulator: from the viewer's first SDP_OFFER arriving to the master's
// first SDP_ANSWER for that viewer arriving.
func turnarounds(emu *kvsemu.Emulator, arns []string) map[string]time.Duration {
	out := make(map[string]time.Duration)
	for _, arn := range arns {
		offers := make(map[string]time.Time)
		for _, r := range emu.Messages(arn) {
			switch {
			case r.From == "viewer" && r.Type == "SDP_OFFER":
				if _, ok := offers[r.ClientID]; !ok {
					offers[r.ClientID] = r.Time
				}
			case r.From == "master" && r.Type == "SDP_ANSWER":
				if t, ok := offers[r.ClientID]; ok {
					if _, done := out[r.ClientID]; !done {
						out[r.ClientID] = r.Time.Sub(t)
					}
				}
			}
		}
	}
	return out
}
