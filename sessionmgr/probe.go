package sessionmgr

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ProbeViewerID is the viewer_id of a probe's record, and the base of the
// clientIds probes lease (vss-probe, vss-probe-2, ...).
const ProbeViewerID = "vss-probe"

// probeHoldGrace is how long a probe's record outlives its hold: the
// record stops counting against the channel's limit at Expires (plus the
// store's grace) even if its replica dies before Release.
const probeHoldGrace = 5 * time.Second

// ProbeSlot is a place on a channel held for a probe (the ProbeChannel
// RPC): a record that counts against the channel's live-session limit as
// a session's does, atomically and on every replica (Store.Create with
// MaxPerChannel), and a clientId leased from the sessions' allocator.
// Release ends both. Its methods are safe for concurrent use.
//
// The record is a PENDING session of viewer ProbeViewerID that no actor
// runs and no app can join (its token is never handed out); listings show
// it while the probe runs. Release deletes it. If the replica dies first,
// it stops counting at its Expires (the hold plus a few seconds); another
// replica that adopts it meanwhile ends it at that time.
type ProbeSlot struct {
	m     *Manager
	id    SessionID
	lease Lease
	once  sync.Once
	// dialed: the clientId may have reached KVS, so it must cool down.
	dialed atomic.Bool

	// Channel is the channel probed, ClientID the probe's clientId on it,
	// IceServers the STUN/TURN servers for it.
	Channel    Channel
	ClientID   string
	IceServers IceServers
}

// ReserveProbe holds a slot on ch for a probe that ends within hold: it
// reserves a place under the channel's live-session limit (ErrChannelFull
// when none is left), leases a clientId (ErrClientIDExhausted) and fetches
// ICE servers for it. The caller must Release the slot.
func (m *Manager) ReserveProbe(ctx context.Context, ch Channel, hold time.Duration) (*ProbeSlot, error) {
	if m.isClosing() {
		return nil, ErrShuttingDown
	}
	now := m.now()
	rec := Session{
		ID:       newSessionID(),
		Channel:  ch,
		ViewerID: ProbeViewerID,
		State:    StatePending,
		Options:  fillOptions(Options{MaxLifetime: hold + probeHoldGrace}, m.cfg.Defaults),
		Created:  now,
		Updated:  now,
		Expires:  now.Add(hold + probeHoldGrace),
		// Nobody holds the token: nothing can join or watch the record.
		TokenHash: noToken(""), // random whatever the id
		Owner:     m.cfg.ReplicaID,
		Epoch:     1,
	}
	if _, err := m.store.Create(ctx, rec, m.cfg.MaxPerChannel); err != nil {
		return nil, err
	}
	p := &ProbeSlot{m: m, id: rec.ID, Channel: ch}
	lease, err := m.acquire(ctx, ch, ProbeViewerID, false)
	if err != nil {
		p.deleteRecord(ctx)
		return nil, fmt.Errorf("allocate clientId: %w", err)
	}
	p.lease, p.ClientID = lease, lease.ClientID
	ice, err := m.sig.IceServers(ctx, ch, lease.ClientID, false)
	if err != nil {
		p.Release(ctx)
		return nil, fmt.Errorf("get ICE servers: %w", err)
	}
	p.IceServers = ice
	return p, nil
}

// Dial opens the probe's viewer signaling connection, taking a turn of
// the channel's connect pacing as sessions do (KVS allows 3 connects per
// second per channel, whatever the replica).
func (p *ProbeSlot) Dial(ctx context.Context) (SignalingConn, error) {
	if err := p.m.pace(ctx, p.Channel.ARN); err != nil {
		return nil, err
	}
	p.dialed.Store(true)
	return p.m.sig.Dial(ctx, p.Channel, p.ClientID)
}

// Release ends the slot: the clientId goes into its cooldown (or, when it
// was never dialed, back to the pool at once: KVS never saw it) and the
// record is deleted, freeing the channel's place. It runs once, even after
// ctx ended (bounded by the store timeout); failures are logged.
func (p *ProbeSlot) Release(ctx context.Context) {
	p.once.Do(func() {
		switch {
		case p.lease.ClientID == "":
		case p.dialed.Load():
			p.m.release(ctx, p.lease)
		default:
			p.m.giveBack(ctx, p.lease)
		}
		p.deleteRecord(ctx)
	})
}

func (p *ProbeSlot) deleteRecord(ctx context.Context) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.m.cfg.StoreTimeout)
	defer cancel()
	if err := p.m.store.Delete(dctx, p.id); err != nil {
		p.m.log.Warn("delete probe record", "session_id", p.id, "error", err)
	}
}
