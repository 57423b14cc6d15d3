package bind

import (
	"context"
	"time"

	"github.com/acme/viewersession/clientid"
	"github.com/acme/viewersession/sessionmgr"
)

// returner is an Allocator that can free a lease KVS never saw at once.
type returner interface {
	Return(ctx context.Context, l clientid.Lease) error
}

var (
	_ sessionmgr.LeaseReturner = (*ClientIDs)(nil)
	_ returner                 = (*clientid.Redis)(nil)
	_ returner                 = (*clientid.Memory)(nil)
)

// Return implements sessionmgr.LeaseReturner: the allocator's Return when
// it has one, else Release (the id then cools down).
func (c *ClientIDs) Return(ctx context.Context, l sessionmgr.Lease) error {
	if r, ok := c.a.(returner); ok {
		return idError(r.Return(ctx, leaseOf(l)))
	}
	return idError(c.a.Release(ctx, leaseOf(l)))
}

// preparer is an Allocator that can prepare a lease for another's write.
type preparer interface {
	Prepare(r clientid.Request) (clientid.Prepared, error)
}

var (
	_ sessionmgr.LeasePreparer = (*ClientIDs)(nil)
	_ preparer                 = (*clientid.Redis)(nil)
)

// PrepareLease implements sessionmgr.LeasePreparer: ok only when the
// allocator prepares leases (clientid.Redis).
func (c *ClientIDs) PrepareLease(channelARN, base string, messageTTL time.Duration) (sessionmgr.PreparedLease, bool, error) {
	p, ok := c.a.(preparer)
	if !ok {
		return sessionmgr.PreparedLease{}, false, nil
	}
	pl, err := p.Prepare(clientid.Request{Channel: channelARN, Base: base, MessageTTL: messageTTL})
	if err != nil {
		return sessionmgr.PreparedLease{}, false, idError(err)
	}
	return sessionmgr.PreparedLease{Lease: lease(pl.Lease, false), Key: pl.Key, TTL: pl.TTL}, true, nil
}

// AcquireTaken implements sessionmgr.LeasePreparer: Acquire, the
// allocator told that the first candidate was just found taken
// (clientid.Request.FirstTaken).
func (c *ClientIDs) AcquireTaken(ctx context.Context, channelARN, base string, messageTTL time.Duration) (sessionmgr.Lease, error) {
	return c.acquire(ctx, clientid.Request{Channel: channelARN, Base: base, MessageTTL: messageTTL, FirstTaken: true})
}
