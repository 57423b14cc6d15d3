package redisreplicas

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/internal/wire"
)

// The forwarded messages are a wire format: replicas of two versions
// forward to each other during a rolling update. Both are read; version 2
// is written, or version 1 with WithWriteVersion(1) while replicas before
// version 2 still run. See sessionmgr/internal/wire for the rules, and the
// golden fixtures in testdata.

// envelope is a request on an inbox, as this package handles it.
type envelope struct {
	Req      sessionmgr.Forwarded
	ReplyKey string
	Deadline time.Time
}

// envelopeV2 is a request on an inbox, version 2.
type envelopeV2 struct {
	V       int              `json:"v"`
	Session string           `json:"session"`
	Kind    string           `json:"kind"` // "app", "close", "attach", "detach"
	Msg     *wire.AppMessage `json:"msg,omitempty"`
	Stream  string           `json:"stream,omitempty"`
	From    string           `json:"from,omitempty"`
	// ReplyKey is the list the reply goes to; Deadline (RFC 3339) when
	// the forwarder stops waiting for it.
	ReplyKey string `json:"replyKey"`
	Deadline string `json:"deadline"`
}

// envelopeV1 is a request on an inbox, version 1 (frozen): the JSON of
// the envelope around a sessionmgr.Forwarded before version 2.
type envelopeV1 struct {
	Req struct {
		Session string            `json:"session"`
		Kind    string            `json:"kind"`
		Msg     wire.AppMessageV1 `json:"msg"`
		Stream  string            `json:"stream,omitempty"`
		From    string            `json:"from,omitempty"`
	} `json:"req"`
	ReplyKey string    `json:"replyKey"`
	Deadline time.Time `json:"deadline"`
}

// replyV2 is an owner's answer, version 2.
type replyV2 struct {
	V       int           `json:"v"`
	Session *wire.Session `json:"session,omitempty"`
	Err     string        `json:"err,omitempty"`
	Detail  string        `json:"detail,omitempty"`
}

// replyV1 is an owner's answer, version 1 (frozen): the JSON of a
// sessionmgr.ForwardReply before version 2.
type replyV1 struct {
	Session wire.SessionV1 `json:"session"`
	Err     string         `json:"err,omitempty"`
	Detail  string         `json:"detail,omitempty"`
}

// encodeEnvelope is env in version (1 or 2; anything else is 2).
func encodeEnvelope(env envelope, version int) ([]byte, error) {
	if version == 1 {
		var r envelopeV1
		r.Req.Session, r.Req.Kind = string(env.Req.Session), env.Req.Kind
		r.Req.Msg = wire.FromAppMessageV1(env.Req.Msg)
		r.Req.Stream, r.Req.From = env.Req.Stream, env.Req.From
		r.ReplyKey, r.Deadline = env.ReplyKey, env.Deadline
		return marshal("forwarded request", r)
	}
	r := envelopeV2{
		V:        wire.Version,
		Session:  string(env.Req.Session),
		Kind:     env.Req.Kind,
		Stream:   env.Req.Stream,
		From:     env.Req.From,
		ReplyKey: env.ReplyKey,
		Deadline: wire.FormatTime(env.Deadline),
	}
	if m := wire.FromAppMessage(env.Req.Msg); m != (wire.AppMessage{}) {
		r.Msg = &m
	}
	return marshal("forwarded request", r)
}

func marshal(what string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", what, err)
	}
	return b, nil
}

// decodeEnvelope reads a request of version 1 or 2.
func decodeEnvelope(data []byte) (envelope, error) {
	var r envelopeV2
	err := json.Unmarshal(data, &r)
	if r.V == 0 {
		var old envelopeV1
		if err := json.Unmarshal(data, &old); err != nil {
			return envelope{}, fmt.Errorf("decode forwarded request (v1): %w", err)
		}
		return envelope{
			Req: sessionmgr.Forwarded{
				Session: sessionmgr.SessionID(old.Req.Session),
				Kind:    old.Req.Kind,
				Msg:     old.Req.Msg.AppMessage(),
				Stream:  old.Req.Stream,
				From:    old.Req.From,
			},
			ReplyKey: old.ReplyKey,
			Deadline: old.Deadline,
		}, nil
	}
	if err != nil {
		return envelope{}, fmt.Errorf("decode forwarded request (v%d): %w", r.V, err)
	}
	env := envelope{
		Req: sessionmgr.Forwarded{
			Session: sessionmgr.SessionID(r.Session),
			Kind:    r.Kind,
			Stream:  r.Stream,
			From:    r.From,
		},
		ReplyKey: r.ReplyKey,
		Deadline: wire.ParseTime(r.Deadline),
	}
	if r.Msg != nil {
		env.Req.Msg = r.Msg.AppMessage()
	}
	return env, nil
}

// encodeReply is rep in version (1 or 2; anything else is 2).
func encodeReply(rep sessionmgr.ForwardReply, version int) ([]byte, error) {
	if version == 1 {
		return marshal("forwarded reply", replyV1{Session: wire.FromSessionV1(rep.Session), Err: rep.Err, Detail: rep.Detail})
	}
	r := replyV2{V: wire.Version, Err: rep.Err, Detail: rep.Detail}
	if rep.Session.ID != "" {
		s := wire.FromSession(rep.Session)
		r.Session = &s
	}
	return marshal("forwarded reply", r)
}

// decodeReply reads a reply of version 1 or 2.
func decodeReply(data []byte) (sessionmgr.ForwardReply, error) {
	var r replyV2
	err := json.Unmarshal(data, &r)
	if r.V == 0 {
		var old replyV1
		if err := json.Unmarshal(data, &old); err != nil {
			return sessionmgr.ForwardReply{}, fmt.Errorf("decode forwarded reply (v1): %w", err)
		}
		return sessionmgr.ForwardReply{Session: old.Session.Session(), Err: old.Err, Detail: old.Detail}, nil
	}
	if err != nil {
		return sessionmgr.ForwardReply{}, fmt.Errorf("decode forwarded reply (v%d): %w", r.V, err)
	}
	rep := sessionmgr.ForwardReply{Err: r.Err, Detail: r.Detail}
	if r.Session != nil {
		rep.Session = r.Session.Session()
	}
	return rep, nil
}
