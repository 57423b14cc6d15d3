package bind

import (
	"context"

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
