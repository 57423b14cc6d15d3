package viewerclient

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// conn is one connection to the service: Config.Conn (the caller's), or
// one the client dialed and must close.
type conn struct {
	cc    *grpc.ClientConn
	rpc   vspb.ViewerSessionServiceClient
	owned bool
}

// dial returns the connection for the next stream: Config.Conn, or a
// fresh one from Config.Dial, which gets AckTimeout to return.
func (r *run) dial(ctx context.Context) (*conn, error) {
	if cc := r.c.cfg.Conn; cc != nil {
		return &conn{cc: cc, rpc: vspb.NewViewerSessionServiceClient(cc)}, nil
	}
	dctx, cancel := context.WithTimeout(ctx, r.c.cfg.AckTimeout)
	defer cancel()
	cc, err := r.c.cfg.Dial(dctx)
	if err != nil {
		return nil, fmt.Errorf("viewerclient: dial: %w", err)
	}
	return &conn{cc: cc, rpc: vspb.NewViewerSessionServiceClient(cc), owned: true}, nil
}

// abandonConn gives the current connection up (the stream on it must be
// closed already): the next stream opens on a fresh one.
func (r *run) abandonConn(reason RedialReason) {
	r.log.Info("re-dialing", "reason", reason, "fresh_connection", r.c.cfg.Dial != nil)
	r.c.count(func(s *Stats) { s.Redials++ })
	if f := r.c.cfg.OnRedial; f != nil {
		f(reason)
	}
	r.dropConn()
}

// dropConn closes the current connection if the client dialed it.
func (r *run) dropConn() {
	cn := r.conn
	r.conn = nil
	if cn == nil || !cn.owned {
		return
	}
	if err := cn.cc.Close(); err != nil {
		r.log.Debug("close connection", "error", err)
	}
}

// receive runs one stream: it opens it, starts the Connect sender, and
// hands every message to Run's goroutine until the stream ends.
func (r *run) receive(ctx context.Context, st *stream) {
	defer close(st.done)
	actx := r.c.auth(ctx)
	if st.watch {
		ws, err := st.conn.rpc.WatchSession(actx, &vspb.WatchSessionRequest{Name: r.c.cfg.Session, AfterSequence: st.after})
		if err != nil {
			st.fail(err)
			return
		}
		for {
			m, err := ws.Recv()
			if err != nil {
				st.fail(err)
				return
			}
			if !r.post(ctx, inbound{s: st, event: m.GetEvent()}) {
				st.fail(ctx.Err())
				return
			}
		}
	}
	cs, err := st.conn.rpc.Connect(actx)
	if err != nil {
		st.fail(err)
		return
	}
	st.sender.Go(func() { r.sendConnect(ctx, cs, st) })
	for {
		m, err := cs.Recv()
		if err != nil {
			st.fail(err)
			return
		}
		if !r.post(ctx, inbound{s: st, connect: m}) {
			st.fail(ctx.Err())
			return
		}
	}
}

func (r *run) post(ctx context.Context, in inbound) bool {
	select {
	case r.inC <- in:
		return true
	case <-ctx.Done():
		return false
	}
}

// sendConnect is the one goroutine that sends on a Connect stream: the
// join, then, once joined, every unacknowledged message not sent on this
// stream yet (a resume resends them, with their numbers), then new ones,
// in order.
func (r *run) sendConnect(ctx context.Context, cs grpc.BidiStreamingClient[vspb.ConnectRequest, vspb.ConnectResponse], st *stream) {
	join := &vspb.ConnectRequest{Message: &vspb.ConnectRequest_Join{Join: &vspb.Join{Name: r.c.cfg.Session, AfterSequence: st.after}}}
	if err := cs.Send(join); err != nil {
		return // the receiver sees why
	}
	select {
	case <-st.joined:
	case <-ctx.Done():
		return
	}
	for {
		for {
			m, ok := r.out.next(st.id, time.Now())
			if !ok {
				break
			}
			if err := cs.Send(m.connectRequest()); err != nil {
				return // m stays unacknowledged: the next stream resends it
			}
			r.log.Debug("sent", "message", m.kind.String(), "app_sequence", m.seq)
		}
		select {
		case <-r.out.ready:
		case <-ctx.Done():
			return
		}
	}
}

// sendSignal is the one goroutine that sends app messages in Signal mode,
// once the app is attached: one Signal call each, in order, on the
// stream's connection. A call's reply settles its message; a message the
// service refuses is settled with the refusal (reported to whoever waits
// for it); a call that fails the way a broken connection does ends the
// stream, and the run re-dials and resends. A call cut short by a re-dial
// may still have reached the service: the resend carries the same number,
// and the service handles each number once.
func (r *run) sendSignal(ctx context.Context, st *stream) {
	select {
	case <-st.joined:
	case <-ctx.Done():
		return
	}
	for {
		m, ok := r.out.call(st.id, time.Now())
		if !ok {
			select {
			case <-r.out.ready:
				continue
			case <-ctx.Done():
				return
			}
		}
		resp, err := st.conn.rpc.Signal(r.c.auth(ctx), m.signalRequest(r.c.cfg.Session))
		switch {
		case err == nil:
			r.out.settle(m, nil)
			r.out.ack(resp.GetAckedAppSequence())
			r.log.Debug("sent", "message", m.kind.String(), "app_sequence", m.seq)
		case ctx.Err() != nil:
			r.out.abandon(m) // the stream is closing: m stays for the next one
			return
		case retryable(err):
			r.log.Info("signal call failed", "message", m.kind.String(), "code", status.Code(err).String(), "error", err)
			r.out.abandon(m)
			st.fail(err)
			return
		default:
			r.log.Warn("service refused a message", "message", m.kind.String(), "code", status.Code(err).String(), "error", err)
			r.out.settle(m, err)
		}
	}
}

func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Aborted, codes.DeadlineExceeded, codes.Canceled, codes.Unknown, codes.Internal:
		return true
	}
	return false
}
