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
	"io"
	"log/slog"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

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
}

var _ vspb.ViewerSessionServiceServer = (*Server)(nil)

// New returns a Server.
func New(m *sessionmgr.Manager, auth *Auth, log *slog.Logger) *Server {
	return &Server{m: m, auth: auth, log: log}
}

func (s *Server) status(ctx context.Context, err error) error { return toStatus(ctx, s.log, err) }

// CreateSession implements the RPC.
func (s *Server) CreateSession(ctx context.Context, req *vspb.CreateSessionRequest) (*vspb.CreateSessionResponse, error) {
	p, err := s.auth.backend(ctx, s.m)
	if err != nil {
		return nil, err
	}
	if req.GetChannel() == nil {
		return nil, invalidField("channel", "required")
	}
	if rid := req.GetRequestId(); rid != "" && !validRequestID(rid) {
		return nil, invalidField("request_id", "want 1..64 characters of [a-zA-Z0-9_.-]")
	}
	opts, err := optionsFromProto(req.GetOptions())
	if err != nil {
		return nil, err
	}
	sess, token, err := s.m.Create(ctx, sessionmgr.CreateParams{
		Channel:   channelRefFromProto(req.GetChannel()),
		ViewerID:  req.GetViewerId(),
		Options:   opts,
		Caller:    p.caller,
		RequestID: req.GetRequestId(),
	})
	if errors.Is(err, sessionmgr.ErrAlreadyExists) && sess.ID != "" {
		// An idempotent repeat: the first call's session and token.
		return &vspb.CreateSessionResponse{Session: sessionToProto(sess), SessionToken: token}, nil
	}
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &vspb.CreateSessionResponse{Session: sessionToProto(sess), SessionToken: token}, nil
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
		return nil, s.status(ctx, err)
	}
	return &vspb.GetSessionResponse{Session: sessionToProto(sess)}, nil
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
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, invalidField("page_size", "must not be negative")
	case size == 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	var f sessionmgr.ListFilter
	if st := req.GetState(); st != vspb.SessionState_SESSION_STATE_UNSPECIFIED {
		if _, ok := vspb.SessionState_name[int32(st)]; !ok {
			return nil, invalidField("state", "unknown value")
		}
		f.State = sessionmgr.State(st)
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
		resp.Sessions = append(resp.Sessions, sessionToProto(sess))
	}
	if next != "" {
		resp.NextPageToken = encodePageToken(filterKey, next)
	}
	return resp, nil
}

func listFilterKey(f sessionmgr.ListFilter) string {
	h := sha256.Sum256([]byte(f.ChannelARN + "\x00" + sessionmgr.State(f.State).String()))
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
		return nil, s.status(ctx, err)
	}
	return &vspb.CloseSessionResponse{Session: sessionToProto(sess)}, nil
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
	if _, err := s.m.Get(ctx, id); err != nil {
		return s.status(ctx, err)
	}
	if !p.backend {
		if _, err := s.m.Attach(ctx, id); err != nil && !errors.Is(err, sessionmgr.ErrSessionClosed) {
			return s.status(ctx, err)
		}
		defer s.m.Detach(context.WithoutCancel(ctx), id)
	}
	err = s.m.Watch(ctx, id, req.GetAfterSequence(), func(e sessionmgr.Event) error {
		if err := stream.Send(&vspb.WatchSessionResponse{Event: eventToProto(e)}); err != nil {
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
	return s.status(ctx, err)
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
	sess, err := s.m.Send(ctx, id, msg)
	if err != nil {
		// Handled or not, the app learns which from the acknowledgement
		// of its next call (or Joined): a repeat is acknowledged, not
		// applied again.
		return nil, s.status(ctx, err)
	}
	return &vspb.SignalResponse{State: vspb.SessionState(sess.State), LastSequence: sess.LastSeq, AckedAppSequence: sess.AckedAppSeq}, nil
}

// Connect implements the RPC: join, then app messages in, timeline out.
func (s *Server) Connect(stream grpc.BidiStreamingServer[vspb.ConnectRequest, vspb.ConnectResponse]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return s.status(ctx, err)
	}
	join := first.GetJoin()
	if join == nil {
		return s.status(ctx, sessionmgr.ErrNotJoined)
	}
	id, err := parseName("join.name", join.GetName())
	if err != nil {
		return err
	}
	if err := checkJoinSequence(first); err != nil {
		return err
	}
	if _, err := s.auth.session(ctx, s.m, id); err != nil {
		return err
	}
	sess, err := s.m.Attach(ctx, id)
	if errors.Is(err, sessionmgr.ErrSessionClosed) && sess.ID != "" {
		// It ended while the app was away: tell it what it missed, ending
		// with the session's own end (OK after CLOSED, the failure's status
		// after FAILED).
		return s.replayEnded(stream, sess, join.GetAfterSequence())
	}
	if err != nil {
		return s.status(ctx, err)
	}
	detached := false
	detach := func() {
		if !detached {
			detached = true
			s.m.Detach(context.WithoutCancel(ctx), id)
		}
	}
	defer detach()
	out := &connectSender{stream: stream}
	if err := out.send(joinedMessage(sess)); err != nil {
		return err
	}

	// The sender: the timeline after join.after_sequence, as it happens.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sendDone := make(chan error, 1)
	go func() {
		sendDone <- s.m.Watch(ctx, id, join.GetAfterSequence(), func(e sessionmgr.Event) error {
			if err := out.send(connectMessages(e)...); err != nil {
				return err
			}
			switch e.Type {
			case sessionmgr.EventFailed:
				return failureStatus(e.Failure)
			case sessionmgr.EventGoingAway:
				return errGoingAway // the stream ends OK; the app resumes elsewhere
			}
			return nil
		})
	}()

	// The receiver: app messages until the stream or the session ends.
	// Each sequenced message the session took is acknowledged, a refused
	// one too before the stream ends with its status, so that the resumed
	// app does not send it again; one that never reached the session (bad
	// input, routing, a store outage) is not.
	recvDone := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				recvDone <- err
				return
			}
			if req.GetJoin() != nil {
				recvDone <- s.status(ctx, sessionmgr.ErrAlreadyJoined)
				return
			}
			msg, err := appMessage(req)
			if err != nil {
				recvDone <- err
				return
			}
			sess, err := s.m.Send(ctx, id, msg)
			if msg.AppSeq != 0 && sess.ID != "" {
				ack := &vspb.ConnectResponse{Message: &vspb.ConnectResponse_Ack{Ack: &vspb.Ack{AppSequence: sess.AckedAppSeq}}}
				if serr := out.send(ack); serr != nil {
					recvDone <- serr
					return
				}
			}
			if err != nil {
				recvDone <- s.status(ctx, err)
				return
			}
		}
	}()

	select {
	case err := <-sendDone:
		// The timeline ended (CLOSED: OK; FAILED: its status), the replica
		// is going away (OK), or sending failed.
		cancel()
		if errors.Is(err, errGoingAway) {
			return nil
		}
		if err != nil {
			if st, ok := status.FromError(err); ok && st.Code() != codes.OK {
				return err
			}
			return s.status(ctx, err)
		}
		return nil
	case err := <-recvDone:
		cancel()
		<-sendDone
		if errors.Is(err, io.EOF) {
			return nil
		}
		if st, ok := status.FromError(err); ok {
			if st.Code() == codes.Canceled {
				return nil
			}
			return err
		}
		return s.status(ctx, err)
	}
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
		return s.status(ctx, err)
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
