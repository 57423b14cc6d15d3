package sessionmgr

import "context"

// peers are the other replicas as this Manager sees them, and the
// decisions that depend on them: where a request for a session this
// replica runs no actor for goes, what a draining replica does with its
// apps, how signaling connects are paced, whether a request checks the
// session's owner first, and how Close leaves the sessions. New picks one
// of two and never changes it: noPeers for a single replica (no
// WithCluster), clusterPeers for one replica of many sharing a Cluster.
// Every method is safe for concurrent use.
type peers interface {
	// start starts the loops that keep this replica in step with the
	// others; they end when the Manager closes (stopping), and Close
	// waits for them (bg).
	start()
	// alive reports whether replica may be alive; unknown counts as
	// alive (never drop or take what a live replica holds).
	alive(ctx context.Context, replica string) bool
	// route serves r for live session s when no actor on this replica
	// runs it: forwarded to the owner or taken over here. again asks the
	// caller to look once more (there is a local actor now, or the
	// session moved). ownerDraining carries over between the looks of
	// one request: set when the owner sent a join away.
	route(ctx context.Context, s Session, r request, ownerDraining *bool) (out Session, again bool, err error)
	// drainingJoin is what a join gets while this replica drains: an
	// error that sends the app to another replica, or nil when the join
	// is served here as at any other time.
	drainingJoin() error
	// forwardDetach tells owner, the replica that holds a forwarded
	// attachment, that its stream (r) ended; it does not wait.
	forwardDetach(ctx context.Context, owner string, id SessionID, r request)
	// checkOwnerFirst reports whether the actor must check that this
	// replica still owns its session before it serves a request (another
	// replica may have taken the session over).
	checkOwnerFirst() bool
	// pace waits for a turn to open a signaling connection on channel.
	pace(ctx context.Context, channel string) error
	// sendAppsAway, on Drain, moves the apps of actors to other replicas
	// and waits until ctx ends for their sessions to leave; whatever
	// remains is let go.
	sendAppsAway(ctx context.Context, actors []*actor)
	// closeReason is how Close ends the sessions this replica runs.
	closeReason() CloseReason
	// joined notes that att's join succeeded, and left that its Detach
	// began: a cluster keeps the streams whose join was forwarded to
	// another replica, to join them again where their sessions go when
	// that replica dies.
	joined(att *Attachment)
	left(att *Attachment)
}

var (
	_ peers = noPeers{}
	_ peers = (*clusterPeers)(nil)
)
