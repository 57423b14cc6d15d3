package clientid

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// Memory is the in-process allocator for a single replica and -dev. It
// behaves as Redis does: a lease lives LeaseTTL past its last Acquire or
// Renew, Release leaves a cooldown-only tombstone, and a lease that expires
// still rests for its cooldown. Its methods are safe for concurrent use.
// It owns no goroutine: expired entries are swept during Acquire.
type Memory struct {
	cfg  Config
	now  func() time.Time
	rand io.Reader

	// mu guards everything below.
	mu sync.Mutex
	// channels maps a channel to the entries of its ids; an entry whose
	// freeAt has passed is free and may be swept.
	channels map[string]map[ID]memEntry
	// nextSweep is when Acquire next drops free entries.
	nextSweep time.Time
}

// memEntry is one id of one channel: leased while token != "" and now is
// before leaseEnd, and unavailable (leased or cooling down) until freeAt.
type memEntry struct {
	token    string
	cooldown time.Duration
	leaseEnd time.Time
	freeAt   time.Time
}

// NewMemory returns an empty in-memory allocator. Zero fields of cfg take
// their defaults (KeyPrefix and Timeout are unused).
func NewMemory(cfg Config, opts ...Option) *Memory {
	o := newOptions(opts)
	return &Memory{
		cfg:      cfg.withDefaults(),
		now:      o.now,
		rand:     o.rand,
		channels: make(map[string]map[ID]memEntry),
	}
}

// Acquire leases the first free candidate for req: the sanitized base, then
// base-2 .. base-MaxSuffix, then base-<random> (a random id when req.Base is
// empty). It fails with ErrInvalid for a request without a channel, with
// ErrExhausted when every candidate is live or cooling down, and with the
// context's error when ctx is done.
func (m *Memory) Acquire(ctx context.Context, req Request) (Lease, error) {
	if err := ctx.Err(); err != nil {
		return Lease{}, err
	}
	if err := req.validate(); err != nil {
		return Lease{}, err
	}
	random, err := randomString(m.rand)
	if err != nil {
		return Lease{}, err
	}
	cands := candidates(sanitizeBase(req.Base), m.cfg.MaxSuffix, random)
	cooldown := m.cfg.cooldown(req.MessageTTL)
	token := newToken()

	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweepLocked(now)
	ids := m.channels[req.Channel]
	if ids == nil {
		ids = make(map[ID]memEntry)
		m.channels[req.Channel] = ids
	}
	for _, id := range cands {
		if e, ok := ids[id]; ok && now.Before(e.freeAt) {
			continue
		}
		ids[id] = memEntry{
			token:    token,
			cooldown: cooldown,
			leaseEnd: now.Add(m.cfg.LeaseTTL),
			freeAt:   now.Add(m.cfg.LeaseTTL + cooldown),
		}
		return Lease{Channel: req.Channel, ID: id, Token: token, Cooldown: cooldown}, nil
	}
	return Lease{}, fmt.Errorf("%w: channel %s, every candidate from %q busy", ErrExhausted, req.Channel, cands[0])
}

// Renew extends a live lease by LeaseTTL from now. It fails with
// ErrNotOwner when l's token no longer owns the id (released, expired or
// taken) and with the context's error when ctx is done.
func (m *Memory) Renew(ctx context.Context, l Lease) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	e, err := m.ownedLocked(l, now)
	if err != nil {
		return err
	}
	e.leaseEnd = now.Add(m.cfg.LeaseTTL)
	e.freeAt = e.leaseEnd.Add(e.cooldown)
	m.channels[l.Channel][l.ID] = e
	return nil
}

// RenewMany renews each of leases as Renew would; errs[i] is leases[i]'s
// answer, nil when renewed.
func (m *Memory) RenewMany(ctx context.Context, leases []Lease) (errs []error) {
	errs = make([]error, len(leases))
	for i, l := range leases {
		errs[i] = m.Renew(ctx, l)
	}
	return errs
}

// Release ends a live lease: the id rests for the lease's cooldown from now
// and is then free. It fails with ErrNotOwner when l's token no longer owns
// the id (then it is already cooling down or someone else's) and with the
// context's error when ctx is done.
func (m *Memory) Release(ctx context.Context, l Lease) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	e, err := m.ownedLocked(l, now)
	if err != nil {
		return err
	}
	m.channels[l.Channel][l.ID] = memEntry{cooldown: e.cooldown, leaseEnd: now, freeAt: now.Add(e.cooldown)}
	return nil
}

// Return ends a live lease whose id was never presented to KVS: the id is
// free at once, with no cooldown. Errors as for Release.
func (m *Memory) Return(ctx context.Context, l Lease) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.ownedLocked(l, m.now()); err != nil {
		return err
	}
	delete(m.channels[l.Channel], l.ID)
	return nil
}

// ownedLocked returns l's entry if l's token holds a live lease on it.
func (m *Memory) ownedLocked(l Lease, now time.Time) (memEntry, error) {
	e, ok := m.channels[l.Channel][l.ID]
	if !ok || l.Token == "" || e.token != l.Token || !now.Before(e.leaseEnd) {
		return memEntry{}, fmt.Errorf("%w: %s in channel %s", ErrNotOwner, l.ID, l.Channel)
	}
	return e, nil
}

// sweepLocked drops free entries, at most once per DefaultCooldown, so
// memory stays proportional to the ids leased or cooling down.
func (m *Memory) sweepLocked(now time.Time) {
	if now.Before(m.nextSweep) {
		return
	}
	m.nextSweep = now.Add(m.cfg.DefaultCooldown)
	for ch, ids := range m.channels {
		for id, e := range ids {
			if !now.Before(e.freeAt) {
				delete(ids, id)
			}
		}
		if len(ids) == 0 {
			delete(m.channels, ch)
		}
	}
}

// sanitizeBase is the candidate base for a request's Base: "" stays "" (a
// random id), anything else is sanitized.
func sanitizeBase(base string) string {
	if base == "" {
		return ""
	}
	return Sanitize(base)
}
