// Package service is the gRPC layer of the Viewer Session Service: request
// validation, auth, proto <-> domain conversion and the one error-to-status
// map. It holds no business rules; those live in sessionmgr.
package service

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/acme/viewersession/probe"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/sessionmgr"
)

// Server implements viewersession.v1.ViewerSessionService over a
// sessionmgr.Manager.
type Server struct {
	vspb.UnimplementedViewerSessionServiceServer
	m    *sessionmgr.Manager
	auth *Auth
	log  *slog.Logger

	limits  Limits
	shared  RateLimiter       // create rate across replicas; nil: local only
	local   *LocalRateLimiter // this process's buckets
	streams streamCounts
	// blocked holds the keys the limiter refused, until their next token
	// is due and while one call probes whether it is.
	blockedMu sync.Mutex
	blocked   map[string]*blockState
	// credits holds tokens borrowed from a BatchRateLimiter and not yet
	// spent, by key (under blockedMu).
	credits map[string]*credit
	// now is the limits' clock (tests set it).
	now func() time.Time
	// warnShared paces the warning of a failing shared limiter.
	warnShared *rate.Limiter
	// prober runs ProbeChannel (service/probe.go); made on first use when
	// no WithProber gave one.
	prober     *probe.Prober
	proberOnce sync.Once
	proberErr  error
}

var _ vspb.ViewerSessionServiceServer = (*Server)(nil)

// New returns a Server.
func New(m *sessionmgr.Manager, auth *Auth, log *slog.Logger, opts ...Option) *Server {
	s := &Server{m: m, auth: auth, log: log, limits: DefaultLimits(), local: NewLocalRateLimiter(), warnShared: rate.NewLimiter(0.2, 1), now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

func (s *Server) status(ctx context.Context, err error) error { return toStatus(ctx, s.log, err) }

// sessionStatus is status for a call on session id: what the app is not
// told (addresses, URLs, dependencies' words) is logged with the id.
func (s *Server) sessionStatus(ctx context.Context, id sessionmgr.SessionID, err error) error {
	return toStatus(ctx, s.log, err, "session_id", string(id))
}

// CreateSession implements the RPC.
func (s *Server) CreateSession(ctx context.Context, req *vspb.CreateSessionRequest) (*vspb.CreateSessionResponse, error) {
	p, err := s.auth.backend(ctx, s.m)
	if err != nil {
		return nil, err
	}
	if err := s.allowCreate(ctx, p.caller); err != nil {
		return nil, err
	}
	params, err := validateCreate(req)
	if err != nil {
		return nil, err
	}
	params.Caller = p.caller
	sess, err := s.m.Create(ctx, params)
	if errors.Is(err, sessionmgr.ErrAlreadyExists) && sess.ID != "" {
		// An idempotent repeat: the first call's session and token.
		return &vspb.CreateSessionResponse{Session: sessionToProto(sess), SessionToken: s.auth.tokenOf(ctx, s.log, sess)}, nil
	}
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &vspb.CreateSessionResponse{Session: sessionToProto(sess), SessionToken: s.auth.tokenOf(ctx, s.log, sess)}, nil
}

// validateCreate checks a CreateSession request (the manager checks the
// channel and viewer further).
func validateCreate(req *vspb.CreateSessionRequest) (sessionmgr.CreateParams, error) {
	if req.GetChannel() == nil {
		return sessionmgr.CreateParams{}, invalidField("channel", "required")
	}
	if rid := req.GetRequestId(); rid != "" && !validRequestID(rid) {
		return sessionmgr.CreateParams{}, invalidField("request_id", "want 1..64 characters of [a-zA-Z0-9_.-]")
	}
	opts, err := optionsFromProto(req.GetOptions())
	if err != nil {
		return sessionmgr.CreateParams{}, err
	}
	return sessionmgr.CreateParams{
		Channel:   channelRefFromProto(req.GetChannel()),
		ViewerID:  req.GetViewerId(),
		Options:   opts,
		RequestID: req.GetRequestId(),
	}, nil
}

func validRequestID(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// GetSession implements the RPC.
func (s *Server) GetSession(ctx context.Context, req *vspb.GetSessionRequest) (*vspb.GetSessionResponse, error) {
	if _, err := s.auth.backend(ctx, s.m); err != nil {
		return nil, err
	}
	id, err := parseName("name", req.GetName())
	if err != nil {
		return nil, err
	}
	sess, err := s.m.Get(ctx, id)
	if err != nil {
		return nil, s.sessionStatus(ctx, id, err)
	}
	return &vspb.GetSessionResponse{Session: backendView(sess, req.GetIncludeIceCredentials())}, nil
}

const (
	defaultPageSize = 50
	maxPageSize     = 500
)

// ListSessions implements the RPC (AIP-158 paging).
func (s *Server) ListSessions(ctx context.Context, req *vspb.ListSessionsRequest) (*vspb.ListSessionsResponse, error) {
	if _, err := s.auth.backend(ctx, s.m); err != nil {
		return nil, err
	}
	size, f, err := validateList(req)
	if err != nil {
		return nil, err
	}
	if c := req.GetChannel(); c != nil {
		ch, err := s.m.ResolveChannel(ctx, channelRefFromProto(c))
		if err != nil {
			return nil, s.status(ctx, err)
		}
		f.ChannelARN = ch.ARN
	}
	filterKey := listFilterKey(f)
	cursor := ""
	if t := req.GetPageToken(); t != "" {
		key, c, ok := decodePageToken(t)
		if !ok || key != filterKey {
			return nil, invalidField("page_token", "not a token of this listing (the filter must match the call that produced it)")
		}
		cursor = c
	}
	list, next, err := s.m.List(ctx, f, size, cursor)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	resp := &vspb.ListSessionsResponse{}
	for _, sess := range list {
		resp.Sessions = append(resp.Sessions, backendView(sess, req.GetIncludeIceCredentials()))
	}
	if next != "" {
		resp.NextPageToken = encodePageToken(filterKey, next)
	}
	return resp, nil
}

// validateList checks a ListSessions request: the page size and the
// state filter.
func validateList(req *vspb.ListSessionsRequest) (int, sessionmgr.ListFilter, error) {
	var f sessionmgr.ListFilter
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return 0, f, invalidField("page_size", "must not be negative")
	case size == 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	if st := req.GetState(); st != vspb.SessionState_SESSION_STATE_UNSPECIFIED {
		state, ok := stateFromProto[st]
		if !ok {
			return 0, f, invalidField("state", "unknown value")
		}
		f.State = state
	}
	if c := req.GetChannel(); c != nil && c.GetArn() == "" && c.GetName() == "" {
		return 0, f, invalidField("channel", "set arn, or name (and region)")
	}
	if v := req.GetViewerId(); len(v) > 256 {
		return 0, f, invalidField("viewer_id", "at most 256 bytes")
	}
	f.ViewerID = req.GetViewerId()
	return size, f, nil
}

func listFilterKey(f sessionmgr.ListFilter) string {
	h := sha256.Sum256([]byte(f.ChannelARN + "\x00" + sessionmgr.State(f.State).String() + "\x00" + f.ViewerID))
	return hex.EncodeToString(h[:6])
}

func encodePageToken(key, cursor string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(key + ":" + cursor))
}

func decodePageToken(t string) (key, cursor string, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil {
		return "", "", false
	}
	key, cursor, ok = strings.Cut(string(b), ":")
	return key, cursor, ok && cursor != ""
}

// CloseSession implements the RPC.
func (s *Server) CloseSession(ctx context.Context, req *vspb.CloseSessionRequest) (*vspb.CloseSessionResponse, error) {
	if _, err := s.auth.backend(ctx, s.m); err != nil {
		return nil, err
	}
	id, err := parseName("name", req.GetName())
	if err != nil {
		return nil, err
	}
	sess, err := s.m.CloseSession(ctx, id)
	if err != nil {
		return nil, s.sessionStatus(ctx, id, err)
	}
	return &vspb.CloseSessionResponse{Session: backendView(sess, false)}, nil
}

// WatchSession implements the RPC. An app watching with its token is
// attached to the session (the Signal + WatchSession path), like a Connect
// stream; a backend only observes.
func (s *Server) WatchSession(req *vspb.WatchSessionRequest, stream grpc.ServerStreamingServer[vspb.WatchSessionResponse]) error {
	ctx := stream.Context()
	id, err := parseName("name", req.GetName())
	if err != nil {
		return err
	}
	p, err := s.auth.session(ctx, s.m, id)
	if err != nil {
		return err
	}
	release, err := s.openStream(string(id), p)
	if err != nil {
		return err
	}
	defer release()
	// An app joins (which returns the session, an ended one with
	// ErrSessionClosed); a backend, or an app whose join returned none,
	// reads it.
	var sess sessionmgr.Session
	if !p.backend {
		joined, att, err := s.m.Join(ctx, id)
		// Detached whatever Join said: a join given up mid-flight may
		// have landed.
		defer att.Detach(context.WithoutCancel(ctx))
		if err != nil && !errors.Is(err, sessionmgr.ErrSessionClosed) {
			return s.sessionStatus(ctx, id, err)
		}
		sess = joined
	}
	if sess.ID == "" {
		var err error
		if sess, err = s.m.Get(ctx, id); err != nil {
			return s.sessionStatus(ctx, id, err)
		}
	}
	if err := checkAfter(req.GetAfterSequence(), sess); err != nil {
		return err
	}
	err = s.m.Watch(ctx, id, req.GetAfterSequence(), func(e sessionmgr.Event) error {
		pe := eventToProto(e)
		if p.backend {
			stripEventCredentials(pe)
		}
		if err := stream.Send(&vspb.WatchSessionResponse{Event: pe}); err != nil {
			return err
		}
		if e.Type == sessionmgr.EventGoingAway && !p.backend {
			return errGoingAway // the app re-watches on another replica
		}
		return nil
	})
	if errors.Is(err, errGoingAway) {
		return nil
	}
	return s.sessionStatus(ctx, id, err)
}

// Signal implements the RPC.
func (s *Server) Signal(ctx context.Context, req *vspb.SignalRequest) (*vspb.SignalResponse, error) {
	id, err := parseName("name", req.GetName())
	if err != nil {
		return nil, err
	}
	if _, err := s.auth.session(ctx, s.m, id); err != nil {
		return nil, err
	}
	msg, err := appMessage(req)
	if err != nil {
		return nil, err
	}
	if err := s.allowAppMessage(ctx, string(id)); err != nil {
		return nil, err
	}
	sess, err := s.m.Send(ctx, id, msg)
	if err != nil {
		// Handled or not, the app learns which from the acknowledgement
		// of its next call (or Joined): a repeat is acknowledged, not
		// applied again.
		return nil, s.sessionStatus(ctx, id, err)
	}
	return &vspb.SignalResponse{State: vspb.SessionState(sess.State), LastSequence: sess.LastSeq, AckedAppSequence: sess.AckedAppSeq}, nil
}

// Connect implements the RPC: join, then app messages in, timeline out.
// Two goroutines serve a joined stream: a receiver of its own for the
// app's messages, and the stream's, which sends the timeline after
// join.after_sequence as it happens; the receiver ends the timeline's
// wait when it ends. The stream's goroutine parks in Manager.Watch for
// the stream's life, so it keeps to small frames: the join (joinConnect)
// and the end (connectEnded) are calls that return, and so is the send of
// each event (connectStream.deliver).
func (s *Server) Connect(stream grpc.BidiStreamingServer[vspb.ConnectRequest, vspb.ConnectResponse]) error {
	c, err := s.joinConnect(stream)
	if c == nil {
		return err
	}
	defer c.close()
	ctx, cancel := context.WithCancelCause(c.ctx)
	defer cancel(nil)
	recvDone := make(chan error, 1)
	go func() {
		err := s.receive(ctx, stream, c.id, c.out)
		recvDone <- err
		cancel(errReceiverEnded)
	}()
	err = s.m.Watch(ctx, c.id, c.after, c.deliver)
	return s.connectEnded(ctx, cancel, c.id, err, recvDone)
}

// connectStream is a joined Connect stream.
type connectStream struct {
	ctx     context.Context // the stream's
	id      sessionmgr.SessionID
	after   uint64 // the join's after_sequence
	att     *sessionmgr.Attachment
	release func() // the stream's place under the limits
	out     *connectSender
}

// close detaches the stream (whatever Join said: a join given up
// mid-flight, the app's network reset right after it, may have landed all
// the same) and gives its place under the limits back.
func (c *connectStream) close() {
	c.att.Detach(context.WithoutCancel(c.ctx))
	c.release()
}

// deliver sends the messages of one timeline event; it ends the timeline
// with the session's failure status after FAILED, and with errGoingAway
// after GOING_AWAY (the stream ends OK; the app resumes elsewhere).
func (c *connectStream) deliver(e sessionmgr.Event) error {
	if err := c.out.send(connectMessages(e)...); err != nil {
		return err
	}
	switch e.Type {
	case sessionmgr.EventFailed:
		return failureStatus(e.Failure)
	case sessionmgr.EventGoingAway:
		return errGoingAway
	}
	return nil
}

// joinConnect reads the join, checks the caller, joins the session and
// sends Joined. A nil stream means the call is over, with err (nil: OK):
// refused, or a join on an ended session answered with what the app
// missed.
func (s *Server) joinConnect(stream grpc.BidiStreamingServer[vspb.ConnectRequest, vspb.ConnectResponse]) (*connectStream, error) {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return nil, s.status(ctx, err)
	}
	join := first.GetJoin()
	if join == nil {
		return nil, s.status(ctx, sessionmgr.ErrNotJoined)
	}
	id, err := parseName("join.name", join.GetName())
	if err != nil {
		return nil, err
	}
	if err := checkJoinSequence(first); err != nil {
		return nil, err
	}
	p, err := s.auth.session(ctx, s.m, id)
	if err != nil {
		return nil, err
	}
	release, err := s.openStream(string(id), p)
	if err != nil {
		return nil, err
	}
	sess, att, err := s.m.Join(ctx, id)
	c := &connectStream{ctx: ctx, id: id, after: join.GetAfterSequence(), att: att, release: release, out: &connectSender{stream: stream}}
	if errors.Is(err, sessionmgr.ErrSessionClosed) && sess.ID != "" {
		// It ended while the app was away: tell it what it missed, ending
		// with the session's own end (OK after CLOSED, the failure's status
		// after FAILED).
		defer c.close()
		if err := checkAfter(c.after, sess); err != nil {
			return nil, err
		}
		return nil, s.replayEnded(stream, sess, c.after)
	}
	if err == nil {
		err = checkAfter(c.after, sess)
	} else {
		err = s.sessionStatus(ctx, id, err)
	}
	if err == nil {
		err = c.out.send(joinedMessage(sess))
	}
	if err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// connectEnded is the status a Connect stream ends with, given how its
// timeline's wait ended (err).
func (s *Server) connectEnded(ctx context.Context, cancel context.CancelCauseFunc, id sessionmgr.SessionID, err error, recvDone <-chan error) error {
	timelineEnded := err == nil || errors.Is(err, errGoingAway)
	if st, ok := status.FromError(err); ok && st.Code() != codes.OK {
		timelineEnded = true
	}
	if !timelineEnded && context.Cause(ctx) == errReceiverEnded {
		// The receiver ended first (the app closed its side, sent bad
		// input, or the session refused a message): its error is the
		// stream's.
		err := <-recvDone
		if errors.Is(err, io.EOF) {
			return nil
		}
		if st, ok := status.FromError(err); ok {
			if st.Code() == codes.Canceled {
				return nil
			}
			return err
		}
		return s.sessionStatus(ctx, id, err)
	}
	// The timeline ended (CLOSED: OK; FAILED: its status), the replica is
	// going away (OK), or sending failed. The receiver ends with the
	// stream.
	cancel(nil)
	if errors.Is(err, errGoingAway) {
		return nil
	}
	if err != nil {
		if st, ok := status.FromError(err); ok && st.Code() != codes.OK {
			return err
		}
		return s.sessionStatus(ctx, id, err)
	}
	return nil
}

// errReceiverEnded is why a Connect stream's receiver cancels the
// timeline's wait.
var errReceiverEnded = errors.New("the app's messages ended")

// receive reads a Connect stream's app messages until the stream or the
// session ends, and returns why. It parks in RecvMsg for the stream's life
// on a goroutine of its own, which therefore keeps a 4 KiB stack only if
// it never grows past it: handling a message (onAppMessage: routing, the
// store, forwarding) takes more, and a stack that grew to 8 KiB is not
// halved again while parked this deep in RecvMsg (1.9 KiB: the runtime
// halves a stack only when less than a quarter of it, counting 800 bytes
// of slack, is in use). So each message is handled on a goroutine of its
// own, waited for, and the messages stay in order. A playing app sends
// about one a second (its media report; at most AppMessagesPerSecond, 20
// by default): a goroutine start per message is about a microsecond, and
// the 4 KiB saved is every joined session's.
func (s *Server) receive(ctx context.Context, stream grpc.BidiStreamingServer[vspb.ConnectRequest, vspb.ConnectResponse], id sessionmgr.SessionID, out *connectSender) error {
	handled := make(chan error, 1)
	for {
		req := new(vspb.ConnectRequest)
		if err := stream.RecvMsg(req); err != nil {
			return err
		}
		go func() { handled <- s.onAppMessage(ctx, req, id, out) }()
		if err := <-handled; err != nil {
			return err
		}
	}
}

// onAppMessage hands one app message to the session. Each sequenced
// message the session took is acknowledged, a refused one too before the
// stream ends with its status, so that the resumed app does not send it
// again; one that never reached the session (bad input, routing, a store
// outage) is not.
func (s *Server) onAppMessage(ctx context.Context, req *vspb.ConnectRequest, id sessionmgr.SessionID, out *connectSender) error {
	if req.GetJoin() != nil {
		return s.status(ctx, sessionmgr.ErrAlreadyJoined)
	}
	msg, err := appMessage(req)
	if err != nil {
		return err
	}
	if err := s.allowAppMessage(ctx, string(id)); err != nil {
		return err
	}
	sess, err := s.m.Send(ctx, id, msg)
	if msg.AppSeq != 0 && sess.ID != "" {
		ack := &vspb.ConnectResponse{Message: &vspb.ConnectResponse_Ack{Ack: &vspb.Ack{AppSequence: sess.AckedAppSeq}}}
		if serr := out.send(ack); serr != nil {
			return serr
		}
	}
	if err != nil {
		return s.sessionStatus(ctx, id, err)
	}
	return nil
}

// checkAfter refuses a resume point beyond the end of the timeline: such
// a stream would wait silently for events the app already claims to have.
func checkAfter(after uint64, sess sessionmgr.Session) error {
	if after <= sess.LastSeq {
		return nil
	}
	desc := fmt.Sprintf("%d is beyond the session's last event, %d", after, sess.LastSeq)
	return withDetails(codes.OutOfRange, "after_sequence: "+desc,
		&errdetails.ErrorInfo{Domain: Domain, Reason: "AFTER_SEQUENCE_OUT_OF_RANGE"},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "after_sequence", Description: desc}}})
}

// replayEnded answers a join on an ended session: joined, the events
// after `after`, then the session's end status.
func (s *Server) replayEnded(stream grpc.BidiStreamingServer[vspb.ConnectRequest, vspb.ConnectResponse], sess sessionmgr.Session, after uint64) error {
	ctx := stream.Context()
	if err := stream.Send(joinedMessage(sess)); err != nil {
		return err
	}
	err := s.m.Watch(ctx, sess.ID, after, func(e sessionmgr.Event) error {
		for _, msg := range connectMessages(e) {
			if err := stream.Send(msg); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.sessionStatus(ctx, sess.ID, err)
	}
	if sess.State == sessionmgr.StateFailed {
		return failureStatus(sess.Failure)
	}
	return nil
}

// joinedMessage answers a join.
func joinedMessage(sess sessionmgr.Session) *vspb.ConnectResponse {
	return &vspb.ConnectResponse{Message: &vspb.ConnectResponse_Joined{Joined: &vspb.Joined{
		Session: sessionToProto(sess), AckedAppSequence: sess.AckedAppSeq,
	}}}
}

// connectSender serializes the sends of a Connect stream: the timeline and
// the acknowledgements go out from two goroutines, and a gRPC stream takes
// one sender at a time.
type connectSender struct {
	stream grpc.BidiStreamingServer[vspb.ConnectRequest, vspb.ConnectResponse]
	// mu serializes send; the messages of one call go out together.
	mu sync.Mutex
}

func (c *connectSender) send(msgs ...*vspb.ConnectResponse) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range msgs {
		if err := c.stream.Send(m); err != nil {
			return err
		}
	}
	return nil
}

// errGoingAway ends an app's stream with OK after GOING_AWAY.
var errGoingAway = errors.New("going away")

// connectMessages is what Connect sends for one event: the actionable
// message first (answer, candidate, renegotiate, going-away), then the
// event itself, so an app that records the sequence has the payload.
func connectMessages(e sessionmgr.Event) []*vspb.ConnectResponse {
	pe := eventToProto(e)
	var out []*vspb.ConnectResponse
	switch d := pe.GetDetail().(type) {
	case *vspb.SessionEvent_Answer:
		out = append(out, &vspb.ConnectResponse{Message: &vspb.ConnectResponse_Answer{Answer: proto.Clone(d.Answer).(*vspb.SessionDescription)}})
	case *vspb.SessionEvent_Candidate:
		out = append(out, &vspb.ConnectResponse{Message: &vspb.ConnectResponse_Candidate{Candidate: proto.Clone(d.Candidate).(*vspb.IceCandidate)}})
	case *vspb.SessionEvent_Renegotiate:
		out = append(out, &vspb.ConnectResponse{Message: &vspb.ConnectResponse_Renegotiate{Renegotiate: proto.Clone(d.Renegotiate).(*vspb.Renegotiate)}})
	case *vspb.SessionEvent_GoingAway:
		out = append(out, &vspb.ConnectResponse{Message: &vspb.ConnectResponse_GoingAway{GoingAway: proto.Clone(d.GoingAway).(*vspb.GoingAway)}})
	}
	return append(out, &vspb.ConnectResponse{Message: &vspb.ConnectResponse_Event{Event: pe}})
}
