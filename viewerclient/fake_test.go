package viewerclient

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/pion/webrtc/v4"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

const (
	fakeSession = "sessions/fake"
	fakeToken   = "fake-token"
)

// fakeService is a small scripted stand-in for the Viewer Session Service,
// speaking the same protocol on a real gRPC server on loopback, with real
// pion peers (testCamera) answering the client's offers. It lets the
// client's protocol handling be tested where the real service never goes:
// going-away, replays that overlap what the client saw, a stream status on
// FAILED. It acknowledges app messages by app_sequence and applies each
// number once, like the real service. The real service is tested with this
// client elsewhere.
type fakeService struct {
	vspb.UnimplementedViewerSessionServiceServer
	t    *testing.T
	addr string // where it listens
	// overlap makes every replay start this many events before the
	// requested sequence, so the client sees duplicates.
	overlap uint64
	// holdLeave, if set before the client starts, delays the reply to a
	// Signal leave until it is closed (the leave takes effect at once).
	holdLeave chan struct{}
	// joinGate, if set before the client starts, holds every join after
	// the first until it is closed; joinHeld gets a token when one waits.
	joinGate chan struct{}
	joinHeld chan struct{}
	// refuse, if set before the client starts, is a message kind the
	// service refuses with INVALID_ARGUMENT.
	refuse string

	// mu guards the fields below.
	mu          sync.Mutex
	events      []*vspb.SessionEvent
	changed     chan struct{} // closed and replaced on every event
	state       vspb.SessionState
	restarting  bool // an ICE restart was asked for: the next offer goes to the same camera
	recovering  bool // a renegotiate awaits the app's connected report
	cam         *testCamera
	cams        []*testCamera
	msgs        []string // app messages applied, by kind (media reports aside)
	reports     []*vspb.MediaReport
	reported    chan struct{}   // closed and replaced on every report
	handled     map[uint64]bool // app sequences handled
	acked       uint64          // every app sequence up to it was handled
	repeats     int             // sequenced messages received again
	unsequenced int             // messages without app_sequence
	joins       int
	watches     int
	badAuth     int
	runCamera   func(*testCamera) // starts a camera's media clock
	camRoutines sync.WaitGroup
}

// startFake serves a fakeService on 127.0.0.1 and returns it with a client
// connection to it; both stop at the end of the test.
func startFake(t *testing.T, overlap uint64) (*fakeService, *grpc.ClientConn) {
	t.Helper()
	f := &fakeService{t: t, overlap: overlap, changed: make(chan struct{}), state: vspb.SessionState_SESSION_STATE_PENDING, handled: map[uint64]bool{}, reported: make(chan struct{})}
	camCtx, camCancel := context.WithCancel(t.Context())
	f.runCamera = func(c *testCamera) { f.camRoutines.Go(func() { c.stream(camCtx) }) }
	f.emit(&vspb.SessionEvent{Type: vspb.EventType_EVENT_TYPE_CREATED})
	srv := grpc.NewServer()
	vspb.RegisterViewerSessionServiceServer(srv, f)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		srv.Stop()
		<-served
		camCancel()
		f.mu.Lock()
		cams := f.cams
		f.mu.Unlock()
		for _, c := range cams {
			c.close(t)
		}
		f.camRoutines.Wait()
	})
	return f, cc
}

// emit appends e to the timeline with the next sequence and the current
// state.
func (f *fakeService) emit(e *vspb.SessionEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.emitLocked(e)
}

func (f *fakeService) emitLocked(e *vspb.SessionEvent) {
	e.Sequence = uint64(len(f.events)) + 1
	e.AckedAppSequence = f.acked
	if e.State == vspb.SessionState_SESSION_STATE_UNSPECIFIED {
		e.State = f.state
	}
	f.events = append(f.events, e)
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeService) setStateLocked(s vspb.SessionState) {
	if f.state == s {
		return
	}
	f.state = s
	f.emitLocked(&vspb.SessionEvent{Type: vspb.EventType_EVENT_TYPE_STATE_CHANGED})
}

// received returns the kinds of the app messages applied so far (media
// reports aside).
func (f *fakeService) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.msgs...)
}

// waitReport waits until a media report satisfies match and returns the
// reports applied so far.
func (f *fakeService) waitReport(ctx context.Context, match func(*vspb.MediaReport) bool) ([]*vspb.MediaReport, error) {
	for {
		f.mu.Lock()
		reps, changed := append([]*vspb.MediaReport(nil), f.reports...), f.reported
		f.mu.Unlock()
		if slices.ContainsFunc(reps, match) {
			return reps, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return reps, ctx.Err()
		}
	}
}

// take records that the message numbered seq is being handled and reports
// whether it is new; a repeat is not applied again. 0 (unsequenced) is
// always new.
func (f *fakeService) take(seq uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if seq == 0 {
		f.unsequenced++
		return true
	}
	if f.handled[seq] {
		f.repeats++
		return false
	}
	f.handled[seq] = true
	for f.handled[f.acked+1] {
		f.acked++
	}
	return true
}

func (f *fakeService) ackedSeq() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.acked
}

func (f *fakeService) authorized(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("authorization"); len(v) == 1 && v[0] == "Bearer "+fakeToken {
		return true
	}
	f.mu.Lock()
	f.badAuth++
	f.mu.Unlock()
	return false
}

// attach is what a join (or an app's WatchSession) does.
func (f *fakeService) attach() *vspb.Session {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.emitLocked(&vspb.SessionEvent{Type: vspb.EventType_EVENT_TYPE_APP_ATTACHED})
	if f.state == vspb.SessionState_SESSION_STATE_PENDING {
		f.setStateLocked(vspb.SessionState_SESSION_STATE_AWAITING_OFFER)
	}
	return &vspb.Session{Name: fakeSession, State: f.state, LastSequence: uint64(len(f.events))}
}

func (f *fakeService) ended() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state == vspb.SessionState_SESSION_STATE_CLOSED || f.state == vspb.SessionState_SESSION_STATE_FAILED
}

// watch sends the events after `after` (minus the overlap), then live ones,
// until the terminal event.
func (f *fakeService) watch(ctx context.Context, after uint64, send func(*vspb.SessionEvent) error) error {
	if after > f.overlap {
		after -= f.overlap
	} else {
		after = 0
	}
	for {
		f.mu.Lock()
		evs, changed := f.events[min(after, uint64(len(f.events))):], f.changed
		f.mu.Unlock()
		for _, e := range evs {
			if err := send(proto.CloneOf(e)); err != nil {
				return err
			}
			after = e.GetSequence()
			switch e.GetType() {
			case vspb.EventType_EVENT_TYPE_CLOSED:
				return nil
			case vspb.EventType_EVENT_TYPE_FAILED:
				return status.Error(codes.DeadlineExceeded, "stream says: "+e.GetFailure().GetMessage())
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// app handles one app message like the session actor would, in short.
func (f *fakeService) app(kind string, offer string, cand *vspb.IceCandidate, rep *vspb.ConnectionStateReport, media *vspb.MediaReport) error {
	if kind == f.refuse {
		return status.Error(codes.InvalidArgument, kind+" refused")
	}
	f.mu.Lock()
	if kind != "media_report" {
		f.msgs = append(f.msgs, kind)
	}
	f.mu.Unlock()
	switch kind {
	case "offer":
		return f.answer(offer)
	case "candidate":
		f.mu.Lock()
		cam := f.cam
		f.mu.Unlock()
		if cam != nil {
			_ = cam.pc.AddICECandidate(candidateFromProto(cand))
		}
	case "state_report":
		f.mu.Lock()
		defer f.mu.Unlock()
		f.emitLocked(&vspb.SessionEvent{Type: vspb.EventType_EVENT_TYPE_CONNECTION_STATE,
			Detail: &vspb.SessionEvent_ConnectionState{ConnectionState: rep}})
		if rep.GetPeerState() == vspb.PeerConnectionState_PEER_CONNECTION_STATE_CONNECTED {
			f.setStateLocked(vspb.SessionState_SESSION_STATE_CONNECTED)
			if f.recovering {
				f.recovering = false
				f.emitLocked(&vspb.SessionEvent{Type: vspb.EventType_EVENT_TYPE_RECOVERED})
			}
		}
	case "network_changed":
		f.renegotiate(vspb.Renegotiate_ACTION_ICE_RESTART)
	case "media_report":
		f.mu.Lock()
		f.reports = append(f.reports, media)
		close(f.reported)
		f.reported = make(chan struct{})
		f.mu.Unlock()
	case "leave":
		f.mu.Lock()
		defer f.mu.Unlock()
		f.state = vspb.SessionState_SESSION_STATE_CLOSED
		f.emitLocked(&vspb.SessionEvent{Type: vspb.EventType_EVENT_TYPE_CLOSED, CloseReason: vspb.CloseReason_CLOSE_REASON_CLIENT_LEFT})
	}
	return nil
}

// renegotiate asks the app for a new offer.
func (f *fakeService) renegotiate(a vspb.Renegotiate_Action) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restarting = a == vspb.Renegotiate_ACTION_ICE_RESTART
	f.recovering = true
	f.setStateLocked(vspb.SessionState_SESSION_STATE_RECOVERING)
	f.emitLocked(&vspb.SessionEvent{Type: vspb.EventType_EVENT_TYPE_RENEGOTIATE,
		Detail: &vspb.SessionEvent_Renegotiate{Renegotiate: &vspb.Renegotiate{Action: a, Reason: "test"}}})
}

// answer has a camera answer the offer: the same camera for an ICE
// restart, a new one otherwise (the answer carries its candidates).
func (f *fakeService) answer(sdp string) error {
	f.mu.Lock()
	cam := f.cam
	if cam == nil || !f.restarting {
		cam = newTestCamera(f.t)
		f.cam = cam
		f.cams = append(f.cams, cam)
		f.runCamera(cam)
	}
	f.restarting = false
	f.emitLocked(&vspb.SessionEvent{Type: vspb.EventType_EVENT_TYPE_OFFER_SENT})
	f.setStateLocked(vspb.SessionState_SESSION_STATE_AWAITING_ANSWER)
	f.mu.Unlock()

	if err := cam.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	answer, err := cam.pc.CreateAnswer(nil)
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	gathered := webrtc.GatheringCompletePromise(cam.pc)
	if err := cam.pc.SetLocalDescription(answer); err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	<-gathered
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setStateLocked(vspb.SessionState_SESSION_STATE_CONNECTING)
	f.emitLocked(&vspb.SessionEvent{Type: vspb.EventType_EVENT_TYPE_ANSWER,
		Detail: &vspb.SessionEvent_Answer{Answer: &vspb.SessionDescription{Sdp: cam.pc.LocalDescription().SDP}}})
	return nil
}

type appOneof interface {
	GetOffer() *vspb.SessionDescription
	GetCandidate() *vspb.IceCandidate
	GetStateReport() *vspb.ConnectionStateReport
	GetNetworkChanged() *vspb.NetworkChanged
	GetLeave() *vspb.Leave
	GetMediaReport() *vspb.MediaReport
	GetAppSequence() uint64
}

// appMessage handles one app message: once per app_sequence.
func (f *fakeService) appMessage(m appOneof) error {
	if !f.take(m.GetAppSequence()) {
		return nil
	}
	switch {
	case m.GetOffer() != nil:
		return f.app("offer", m.GetOffer().GetSdp(), nil, nil, nil)
	case m.GetCandidate() != nil:
		return f.app("candidate", "", m.GetCandidate(), nil, nil)
	case m.GetStateReport() != nil:
		return f.app("state_report", "", nil, m.GetStateReport(), nil)
	case m.GetNetworkChanged() != nil:
		return f.app("network_changed", "", nil, nil, nil)
	case m.GetLeave() != nil:
		return f.app("leave", "", nil, nil, nil)
	case m.GetMediaReport() != nil:
		return f.app("media_report", "", nil, nil, m.GetMediaReport())
	}
	return status.Error(codes.InvalidArgument, "empty message")
}

// Connect mirrors the real server: join, joined, then a sender of the
// timeline (actionable message, then the event) and a receiver of app
// messages.
func (f *fakeService) Connect(stream grpc.BidiStreamingServer[vspb.ConnectRequest, vspb.ConnectResponse]) error {
	ctx := stream.Context()
	if !f.authorized(ctx) {
		return status.Error(codes.Unauthenticated, "bad token")
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	join := first.GetJoin()
	if join.GetName() != fakeSession {
		return status.Error(codes.InvalidArgument, "join first")
	}
	f.mu.Lock()
	f.joins++
	held := f.joins > 1 && f.joinGate != nil
	f.mu.Unlock()
	if held {
		f.joinHeld <- struct{}{}
		<-f.joinGate
	}
	if f.ended() {
		// Like the real service: Connect refuses to join an ended session.
		st, _ := status.New(codes.FailedPrecondition, "session closed").WithDetails(&errdetails.ErrorInfo{Domain: errorDomain, Reason: "SESSION_CLOSED"})
		return st.Err()
	}
	if err := stream.Send(&vspb.ConnectResponse{Message: &vspb.ConnectResponse_Joined{Joined: &vspb.Joined{Session: f.attach(), AckedAppSequence: f.ackedSeq()}}}); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var sendMu sync.Mutex // Send is not safe for concurrent use
	send := func(m *vspb.ConnectResponse) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(m)
	}
	sent := make(chan error, 1)
	go func() {
		sent <- f.watch(ctx, join.GetAfterSequence(), func(e *vspb.SessionEvent) error {
			var m *vspb.ConnectResponse
			switch d := e.GetDetail().(type) {
			case *vspb.SessionEvent_Answer:
				m = &vspb.ConnectResponse{Message: &vspb.ConnectResponse_Answer{Answer: d.Answer}}
			case *vspb.SessionEvent_Renegotiate:
				m = &vspb.ConnectResponse{Message: &vspb.ConnectResponse_Renegotiate{Renegotiate: d.Renegotiate}}
			case *vspb.SessionEvent_GoingAway:
				m = &vspb.ConnectResponse{Message: &vspb.ConnectResponse_GoingAway{GoingAway: d.GoingAway}}
			}
			if m != nil {
				if err := send(m); err != nil {
					return err
				}
			}
			return send(&vspb.ConnectResponse{Message: &vspb.ConnectResponse_Event{Event: e}})
		})
	}()
	received := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				received <- err
				return
			}
			if err := f.appMessage(req); err != nil {
				received <- err
				return
			}
			if req.GetAppSequence() != 0 {
				if err := send(&vspb.ConnectResponse{Message: &vspb.ConnectResponse_Ack{Ack: &vspb.Ack{AppSequence: f.ackedSeq()}}}); err != nil {
					received <- err
					return
				}
			}
		}
	}()
	select {
	case err := <-sent:
		return err
	case err := <-received:
		cancel()
		<-sent
		if _, ok := status.FromError(err); ok && status.Code(err) != codes.Canceled {
			return err // like the real service: a refused message ends the stream
		}
		return nil
	}
}

// WatchSession attaches the app and streams the timeline.
func (f *fakeService) WatchSession(req *vspb.WatchSessionRequest, stream grpc.ServerStreamingServer[vspb.WatchSessionResponse]) error {
	if !f.authorized(stream.Context()) {
		return status.Error(codes.Unauthenticated, "bad token")
	}
	f.mu.Lock()
	f.watches++
	f.mu.Unlock()
	if !f.ended() {
		f.attach()
	}
	err := f.watch(stream.Context(), req.GetAfterSequence(), func(e *vspb.SessionEvent) error {
		return stream.Send(&vspb.WatchSessionResponse{Event: e})
	})
	if status.Code(err) == codes.DeadlineExceeded {
		return nil // WatchSession ends OK after FAILED
	}
	return err
}

// Signal takes one app message.
func (f *fakeService) Signal(ctx context.Context, req *vspb.SignalRequest) (*vspb.SignalResponse, error) {
	if !f.authorized(ctx) {
		return nil, status.Error(codes.Unauthenticated, "bad token")
	}
	if err := f.appMessage(req); err != nil {
		return nil, err
	}
	if req.GetLeave() != nil && f.holdLeave != nil {
		<-f.holdLeave
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return &vspb.SignalResponse{State: f.state, LastSequence: uint64(len(f.events)), AckedAppSequence: f.acked}, nil
}
