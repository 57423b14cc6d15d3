// Package bind adapts the KVS client (package kvs) and the clientId
// allocators (package clientid) to the interfaces sessionmgr consumes, and
// translates their errors into sessionmgr's sentinels. It is the only place
// that knows both sides.
package bind

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/acme/viewersession/clientid"
	"github.com/acme/viewersession/kvs"
	"github.com/acme/viewersession/sessionmgr"
)

// Signaler adapts a *kvs.Client to sessionmgr.Signaler.
type Signaler struct {
	c *kvs.Client
}

var _ sessionmgr.Signaler = (*Signaler)(nil)

// NewSignaler returns a Signaler over c.
func NewSignaler(c *kvs.Client) *Signaler { return &Signaler{c: c} }

// Resolve implements sessionmgr.Signaler.
func (s *Signaler) Resolve(ctx context.Context, ref sessionmgr.ChannelRef) (sessionmgr.Channel, error) {
	ch, err := s.c.ResolveChannel(ctx, kvs.ChannelRef{ARN: ref.ARN, Name: ref.Name, Region: ref.Region})
	if err != nil {
		return sessionmgr.Channel{}, kvsError(err)
	}
	return channelOf(ch), nil
}

func channelOf(ch kvs.Channel) sessionmgr.Channel {
	return sessionmgr.Channel{ARN: ch.ARN, Name: ch.Name, Region: ch.Region, MessageTTL: ch.MessageTTL}
}

// kvsChannel rebuilds the kvs channel (endpoints come from the client's
// cache by ARN).
func (s *Signaler) kvsChannel(ctx context.Context, ch sessionmgr.Channel) (kvs.Channel, error) {
	kc, err := s.c.ResolveChannel(ctx, kvs.ChannelRef{ARN: ch.ARN})
	if err != nil {
		return kvs.Channel{}, kvsError(err)
	}
	return kc, nil
}

// IceServers implements sessionmgr.Signaler.
func (s *Signaler) IceServers(ctx context.Context, ch sessionmgr.Channel, clientID string, refresh bool) (sessionmgr.IceServers, error) {
	kc, err := s.kvsChannel(ctx, ch)
	if err != nil {
		return sessionmgr.IceServers{}, err
	}
	var ice kvs.IceServers
	if refresh {
		ice, err = s.c.RefreshIceServers(ctx, kc, clientID)
	} else {
		ice, err = s.c.IceServers(ctx, kc, clientID)
	}
	if err != nil {
		return sessionmgr.IceServers{}, kvsError(err)
	}
	return iceOf(ice), nil
}

func iceOf(ice kvs.IceServers) sessionmgr.IceServers {
	out := sessionmgr.IceServers{Expires: ice.Expires}
	for _, s := range ice.Servers {
		out.Servers = append(out.Servers, sessionmgr.IceServer{
			URLs: append([]string(nil), s.URLs...), Username: s.Username, Credential: s.Credential,
		})
	}
	return out
}

// Dial implements sessionmgr.Signaler.
func (s *Signaler) Dial(ctx context.Context, ch sessionmgr.Channel, clientID string) (sessionmgr.SignalingConn, error) {
	kc, err := s.kvsChannel(ctx, ch)
	if err != nil {
		return nil, err
	}
	// The kvs connection's reader translates its events as it delivers
	// them: no goroutine or buffer of our own in between.
	conn, events, err := kvs.DialAs(ctx, s.c, kc, clientID, signalOf)
	if err != nil {
		return nil, kvsError(err)
	}
	return &conn2{c: conn, events: events}, nil
}

// ValidateOffer implements sessionmgr.Signaler.
func (s *Signaler) ValidateOffer(sdp string) (string, error) {
	info, err := kvs.ValidateOffer(sdp)
	if err != nil {
		return "", err
	}
	return info.ICEUfrag, nil
}

// ValidateCandidate implements sessionmgr.Signaler.
func (s *Signaler) ValidateCandidate(c sessionmgr.Candidate) error {
	return kvs.ValidateCandidate(kvsCandidate(c))
}

func kvsCandidate(c sessionmgr.Candidate) kvs.Candidate {
	return kvs.Candidate{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
}

// conn2 adapts a *kvs.Conn whose events come translated (kvs.DialAs).
type conn2 struct {
	c      *kvs.Conn
	events <-chan *sessionmgr.SignalEvent
}

// signalOf translates a kvs event; false drops it. It runs on the kvs
// connection's reader goroutine.
func signalOf(ev kvs.Event) (*sessionmgr.SignalEvent, bool) {
	switch ev.Type {
	case kvs.EventAnswer:
		return &sessionmgr.SignalEvent{Kind: sessionmgr.SignalAnswer, SDP: ev.SDP}, true
	case kvs.EventCandidate:
		k := ev.Candidate
		return &sessionmgr.SignalEvent{Kind: sessionmgr.SignalCandidate, Candidate: sessionmgr.Candidate{
			Candidate: k.Candidate, SDPMid: k.SDPMid, SDPMLineIndex: k.SDPMLineIndex, UsernameFragment: k.UsernameFragment,
		}}, true
	case kvs.EventStatus:
		d := "rejected"
		if st := ev.Status; st != nil {
			d = fmt.Sprintf("%s (status %s) for %s: %s", st.ErrorType, st.StatusCode, actionName(st.Action), st.Description)
		}
		return &sessionmgr.SignalEvent{Kind: sessionmgr.SignalRejected, Detail: d}, true
	case kvs.EventReconnected:
		return &sessionmgr.SignalEvent{Kind: sessionmgr.SignalReconnected, Err: ev.Err}, true
	case kvs.EventIceServersRefreshed:
		if ev.IceServers == nil {
			return nil, false
		}
		ice := iceOf(*ev.IceServers)
		return &sessionmgr.SignalEvent{Kind: sessionmgr.SignalIceServers, IceServers: &ice}, true
	case kvs.EventClosed:
		return &sessionmgr.SignalEvent{Kind: sessionmgr.SignalClosed, Err: ev.Err}, true
	}
	return nil, false
}

func actionName(a string) string {
	if a == "" {
		return "a message"
	}
	return a
}

func (c *conn2) SendOffer(ctx context.Context, sdp string) error {
	_, err := c.c.SendOffer(ctx, sdp)
	return kvsError(err)
}

func (c *conn2) SendCandidate(ctx context.Context, cand sessionmgr.Candidate) error {
	_, err := c.c.SendCandidate(ctx, kvsCandidate(cand))
	return kvsError(err)
}

func (c *conn2) Events() <-chan *sessionmgr.SignalEvent { return c.events }

// Close closes the kvs connection and waits for its reader; idempotent
// (as kvs.Conn.Close is). Events undelivered by then are dropped and the
// events channel is closed.
func (c *conn2) Close() error { return c.c.Close() }

// kvsError translates kvs errors to sessionmgr's sentinels, keeping the
// message.
func kvsError(err error) error {
	if err == nil {
		return nil
	}
	var target error
	switch {
	case errors.Is(err, kvs.ErrNotFound):
		target = sessionmgr.ErrChannelNotFound
	case errors.Is(err, kvs.ErrCredentials):
		target = sessionmgr.ErrCredentials
	case errors.Is(err, kvs.ErrInvalidRegion):
		target = sessionmgr.ErrInvalidRegion
	case errors.Is(err, kvs.ErrAccessDenied):
		target = sessionmgr.ErrAccessDenied
	case errors.Is(err, kvs.ErrInvalidArgument):
		target = sessionmgr.ErrInvalidArgument
	case errors.Is(err, kvs.ErrThrottled):
		target = sessionmgr.ErrThrottled
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	default:
		target = sessionmgr.ErrUnavailable
	}
	return fmt.Errorf("%w: %v", target, err)
}

// Allocator is what both clientid allocators offer.
type Allocator interface {
	Acquire(ctx context.Context, r clientid.Request) (clientid.Lease, error)
	Renew(ctx context.Context, l clientid.Lease) error
	Release(ctx context.Context, l clientid.Lease) error
}

// ClientIDs adapts a clientid allocator to sessionmgr.ClientIDs.
type ClientIDs struct {
	a Allocator
}

var _ sessionmgr.ClientIDs = (*ClientIDs)(nil)

// NewClientIDs returns a ClientIDs over a.
func NewClientIDs(a Allocator) *ClientIDs { return &ClientIDs{a: a} }

// Acquire implements sessionmgr.ClientIDs.
func (c *ClientIDs) Acquire(ctx context.Context, channelARN, base string, messageTTL time.Duration) (sessionmgr.Lease, error) {
	return c.acquire(ctx, clientid.Request{Channel: channelARN, Base: base, MessageTTL: messageTTL})
}

func (c *ClientIDs) acquire(ctx context.Context, r clientid.Request) (sessionmgr.Lease, error) {
	l, err := c.a.Acquire(ctx, r)
	if err != nil {
		return sessionmgr.Lease{}, idError(err)
	}
	collided := r.Base != "" && string(l.ID) != clientid.Sanitize(r.Base)
	return lease(l, collided), nil
}

// lease is l as sessionmgr's.
func lease(l clientid.Lease, collided bool) sessionmgr.Lease {
	return sessionmgr.Lease{ClientID: string(l.ID), Channel: l.Channel, Token: l.Token, Cooldown: l.Cooldown, Collided: collided}
}

func leaseOf(l sessionmgr.Lease) clientid.Lease {
	return clientid.Lease{Channel: l.Channel, ID: clientid.ID(l.ClientID), Token: l.Token, Cooldown: l.Cooldown}
}

// Renew implements sessionmgr.ClientIDs.
func (c *ClientIDs) Renew(ctx context.Context, l sessionmgr.Lease) error {
	return idError(c.a.Renew(ctx, leaseOf(l)))
}

// RenewMany implements sessionmgr.LeaseRenewer: in one call of the
// allocator's RenewMany when it has one (both clientid allocators do),
// else a Renew per lease.
func (c *ClientIDs) RenewMany(ctx context.Context, leases []sessionmgr.Lease) []error {
	ls := make([]clientid.Lease, len(leases))
	for i, l := range leases {
		ls[i] = leaseOf(l)
	}
	var errs []error
	if m, ok := c.a.(manyRenewer); ok {
		errs = m.RenewMany(ctx, ls)
	} else {
		errs = make([]error, len(ls))
		for i, l := range ls {
			errs[i] = c.a.Renew(ctx, l)
		}
	}
	for i, err := range errs {
		errs[i] = idError(err)
	}
	return errs
}

// manyRenewer is an Allocator that renews many leases in one call.
type manyRenewer interface {
	RenewMany(ctx context.Context, leases []clientid.Lease) []error
}

var (
	_ sessionmgr.LeaseRenewer = (*ClientIDs)(nil)
	_ manyRenewer             = (*clientid.Redis)(nil)
	_ manyRenewer             = (*clientid.Memory)(nil)
)

// Release implements sessionmgr.ClientIDs.
func (c *ClientIDs) Release(ctx context.Context, l sessionmgr.Lease) error {
	return idError(c.a.Release(ctx, leaseOf(l)))
}

func idError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, clientid.ErrExhausted):
		return fmt.Errorf("%w: %v", sessionmgr.ErrClientIDExhausted, err)
	case errors.Is(err, clientid.ErrUnavailable):
		return fmt.Errorf("%w: %v", sessionmgr.ErrUnavailable, err)
	case errors.Is(err, clientid.ErrInvalid):
		return fmt.Errorf("%w: %v", sessionmgr.ErrInvalidArgument, err)
	case errors.Is(err, clientid.ErrNotOwner):
		return fmt.Errorf("%w: %v", sessionmgr.ErrConflict, err)
	}
	return err
}
