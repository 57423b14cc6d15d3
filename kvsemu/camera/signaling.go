package camera

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/coder/websocket"
)

const (
	// readLimit bounds one inbound frame; KVS payloads are at most 10 KB
	// (KVS-PROTOCOL.md 3) and base64 adds a third.
	readLimit = 64 << 10
	// writeTimeout bounds one outbound frame (the C SDK's send timeout).
	writeTimeout = 5 * time.Second
	// outQueue is how many outbound frames may wait for the socket.
	outQueue = 1024
)

// signal keeps a MASTER signaling connection up until ctx ends: dial, serve,
// and after a failure or close dial again, pausing ReconnectDelay and
// doubling the pause on each failed Dial up to MaxReconnectDelay.
func (r *run) signal(ctx context.Context) {
	var pause time.Duration
	for {
		if pause > 0 {
			t := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		conn, err := r.c.cfg.Dial(ctx)
		if ctx.Err() != nil {
			if err == nil {
				_ = conn.CloseNow()
			}
			return
		}
		if err != nil {
			pause = min(max(2*pause, r.c.cfg.ReconnectDelay), r.c.cfg.MaxReconnectDelay)
			r.log.Warn("signaling dial", "err", err, "retry_in", pause)
			continue
		}
		r.c.count(func(s *Stats) { s.SignalingConnects++ })
		r.log.Info("signaling connected")
		err = r.serve(ctx, conn)
		if ctx.Err() != nil {
			return
		}
		r.log.Info("signaling connection ended, reconnecting", "err", err)
		pause = r.c.cfg.ReconnectDelay
	}
}

// serve reads and writes one signaling connection until it fails, GO_AWAY
// arrives, or ctx ends. It closes conn and returns why it ended.
func (r *run) serve(ctx context.Context, conn *websocket.Conn) error {
	conn.SetReadLimit(readLimit)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer cancel()
		r.write(ctx, conn)
	})
	err := r.read(ctx, conn)
	cancel()
	wg.Wait()
	if errors.Is(err, errGoAway) {
		_ = conn.Close(websocket.StatusNormalClosure, "going away")
	} else {
		_ = conn.CloseNow()
	}
	return err
}

// write sends queued frames on conn until ctx ends or a write fails; the
// frame being written when it fails is lost, like a real socket's.
func (r *run) write(ctx context.Context, conn *websocket.Conn) {
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-r.out:
			wctx, cancel := context.WithTimeout(ctx, writeTimeout)
			err := conn.Write(wctx, websocket.MessageText, f)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					r.log.Warn("signaling write", "err", err)
				}
				return
			}
		}
	}
}

// read handles inbound frames until the connection fails or GO_AWAY. SDP
// offers and ICE candidates go to the event loop; empty, binary, unparsable
// and foreign frames are ignored.
func (r *run) read(ctx context.Context, conn *websocket.Conn) error {
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		received := r.c.now()
		if typ != websocket.MessageText {
			r.log.Debug("ignoring binary signaling frame", "bytes", len(data))
			continue
		}
		f, ok := parseFrame(data)
		if !ok {
			r.log.Debug("ignoring unparsable or empty signaling frame", "bytes", len(data))
			continue
		}
		switch f.MessageType {
		case typeSDPOffer, typeICECandidate:
			ev, ok := r.inboundEvent(f, received)
			if !ok {
				continue
			}
			select {
			case r.events <- ev:
			case <-ctx.Done():
				return ctx.Err()
			}
		case typeGoAway:
			return errGoAway
		case typeReconnectICEServer:
			// The camera uses host candidates only; there is no TURN
			// configuration to refresh.
			r.log.Info("RECONNECT_ICE_SERVER received, nothing to refresh")
		case typeStatusResponse:
			if sr := f.StatusResponse; sr != nil {
				r.log.Info("STATUS_RESPONSE", "correlation_id", sr.CorrelationID, "error_type", sr.ErrorType,
					"status_code", string(sr.StatusCode), "description", sr.Description)
			} else {
				r.log.Info("STATUS_RESPONSE without statusResponse")
			}
		case "":
			r.log.Debug("ignoring foreign signaling frame", "bytes", len(data))
		default:
			r.log.Debug("ignoring signaling frame", "message_type", f.MessageType)
		}
	}
}

// inboundEvent turns an SDP_OFFER or ICE_CANDIDATE frame into an event.
func (r *run) inboundEvent(f inFrame, received time.Time) (event, bool) {
	log := r.log.With("client_id", f.SenderClientID, "message_type", f.MessageType)
	if f.SenderClientID == "" {
		log.Warn("ignoring frame without senderClientId")
		return event{}, false
	}
	if f.MessagePayload == "" {
		log.Warn("ignoring frame with empty messagePayload")
		return event{}, false
	}
	ev := event{clientID: f.SenderClientID, received: received}
	if f.MessageType == typeSDPOffer {
		offer, err := decodeOffer(f.MessagePayload)
		if err != nil {
			log.Warn("ignoring offer", "err", err)
			return event{}, false
		}
		ev.kind, ev.offer = evOffer, offer
		return ev, true
	}
	cand, ok, err := decodeCandidate(f.MessagePayload)
	if err != nil {
		log.Warn("ignoring candidate", "err", err)
		return event{}, false
	}
	if !ok {
		return event{}, false
	}
	ev.kind, ev.cand = evCandidate, cand
	return ev, true
}
