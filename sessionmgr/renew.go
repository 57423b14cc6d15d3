package sessionmgr

import (
	"context"
	"time"
)

// LeaseRenewer is a ClientIDs that renews many leases in one call. With
// one, a Manager renews the leases of all its sessions together every
// LeaseRenew (one call, a round trip per chunk of leases) instead of each
// session renewing its own (a round trip per session).
type LeaseRenewer interface {
	// RenewMany renews each of leases as Renew would; errs[i] is the
	// answer for leases[i], nil when renewed.
	RenewMany(ctx context.Context, leases []Lease) (errs []error)
}

// leaseLoss tells an actor that the renewal of its lease with token failed.
type leaseLoss struct {
	token string
	err   error
}

// holdLease lists l as a's lease for the Manager's renewer (actor
// goroutine; nothing without a renewer).
func (m *Manager) holdLease(a *actor, l Lease) {
	if m.renewer == nil {
		return
	}
	m.leaseMu.Lock()
	defer m.leaseMu.Unlock()
	m.held[a] = l
}

// dropLease stops renewing a's lease (actor goroutine).
func (m *Manager) dropLease(a *actor) {
	if m.renewer == nil {
		return
	}
	m.leaseMu.Lock()
	defer m.leaseMu.Unlock()
	delete(m.held, a)
}

// renewLeases renews the leases its actors hold every LeaseRenew, all in
// one RenewMany, until ctx ends. A lease that fails to renew is reported
// to its actor, which logs it as a renewal of its own would have been.
func (m *Manager) renewLeases(ctx context.Context) {
	t := time.NewTicker(max(m.cfg.LeaseRenew, time.Millisecond))
	defer t.Stop()
	// One interval's actors and leases, their arrays kept for the next:
	// every idle session is in each, so new ones would be garbage of a
	// size that grows with the sessions, every interval.
	var actors []*actor
	var leases []Lease
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		actors, leases = m.renewHeld(ctx, actors[:0], leases[:0])
		clear(actors) // no ended actor or token kept alive until the next
		clear(leases)
	}
}

// renewHeld renews every held lease once (renewLeases), listing them in
// actors and leases, which it returns.
func (m *Manager) renewHeld(ctx context.Context, actors []*actor, leases []Lease) ([]*actor, []Lease) {
	m.leaseMu.Lock()
	for a, l := range m.held {
		actors = append(actors, a)
		leases = append(leases, l)
	}
	m.leaseMu.Unlock()
	if len(leases) == 0 {
		return actors, leases
	}
	// The batch must not run into the next interval.
	rctx, cancel := context.WithTimeout(ctx, m.cfg.LeaseRenew)
	defer cancel()
	errs := m.renewer.RenewMany(rctx, leases)
	for i, err := range errs {
		if err == nil || i >= len(actors) {
			continue
		}
		select {
		case actors[i].leaseLost <- leaseLoss{token: leases[i].Token, err: err}:
		default: // one report waits already; the next interval reports again
		}
	}
	return actors, leases
}
