package sessionmgr

import (
	"context"
	"time"
)

// Store keeps session records and their timelines. Implementations:
// sessionmgr/memstore (one replica, tests) and the Redis store. Both pass
// sessionmgr/storetest. All methods are safe for concurrent use.
type Store interface {
	// Create inserts s when its channel has fewer than limit live sessions,
	// atomically across replicas; otherwise ErrChannelFull. When s.Caller and
	// s.RequestID are set and a session created with the same pair exists
	// (within the idempotency window), it returns that session and
	// ErrAlreadyExists instead. events, when given, start the session's
	// timeline (Seq 1, 2, ...) in the same write. On success it returns s
	// as written.
	Create(ctx context.Context, s Session, limit int, events ...Event) (Session, error)
	// Get returns a session or ErrNotFound.
	Get(ctx context.Context, id SessionID) (Session, error)
	// Put replaces a session's record. It fails with ErrFenced when the
	// stored record's Epoch differs from s.Epoch (a newer owner took over)
	// and with ErrNotFound when there is none. A terminal state removes the
	// session from its channel's live count; a terminal record expires after
	// the retention period.
	Put(ctx context.Context, s Session) error
	// Save appends events to the session's timeline and replaces its
	// record with s, in one write: an actor's turn. It fails as Put does.
	// Events the timeline already holds (Seq <= its last: a write of this
	// epoch that landed after it timed out) are skipped; the others must
	// have increasing Seq after the last (gaps allowed: events dropped
	// during a long outage), else ErrSeqConflict and nothing changes.
	Save(ctx context.Context, s Session, events []Event) error
	// Delete removes a session that never became visible to an app (a
	// create that failed half-way).
	Delete(ctx context.Context, id SessionID) error
	// List returns sessions matching f, newest first, at most limit, after
	// the opaque cursor (empty for the first page), and the cursor of the
	// next page (empty on the last). A call examines a bounded number of
	// sessions: when a filter skips many, a page comes back short (even
	// empty) with a cursor to go on from.
	List(ctx context.Context, f ListFilter, limit int, cursor string) ([]Session, string, error)
	// Append adds e to the session's timeline. e.Seq must be the stored
	// last sequence + 1, and epoch the stored record's Epoch (else
	// ErrFenced: a newer owner took over; ErrSeqConflict for another Seq).
	// The newest EventRetention
	// events are kept.
	Append(ctx context.Context, id SessionID, epoch uint64, e Event) error
	// Takeover makes owner the session's owner if its stored Epoch is still
	// fromEpoch (a compare-and-set): the record gets Epoch fromEpoch+1 and
	// Owner owner, and is returned. ErrFenced when the epoch moved on,
	// ErrNotFound when there is none, ErrSessionClosed when it has ended.
	Takeover(ctx context.Context, id SessionID, owner string, fromEpoch uint64) (Session, error)
	// Events returns up to limit events with Seq > after, oldest first.
	// With wait and none available, it blocks until one is appended or ctx
	// ends (then it returns ctx.Err()).
	Events(ctx context.Context, id SessionID, after uint64, limit int, wait bool) ([]Event, error)
	// RecoveryHint returns the recovery step remembered for the master of
	// the channel with ARN channelARN, or StepUnknown when none is (it
	// expired, or was never set).
	RecoveryHint(ctx context.Context, channelARN string) (RecoveryStep, error)
	// SetRecoveryHint remembers step (not StepUnknown) for the channel for
	// ttl (> 0), replacing what was remembered; every replica reads it.
	SetRecoveryHint(ctx context.Context, channelARN string, step RecoveryStep, ttl time.Duration) error

	// The owner index: what each replica owns and what was taken from it,
	// so that a replica's periodic work costs what it owns, not what the
	// store holds. Create (of a live session), Takeover and a terminal
	// Put maintain it; its entries are hints that the caller checks
	// against the records (Owners).

	// Moved returns the sessions taken over from replica (by Takeover)
	// that Forget has not dropped, in one round trip.
	Moved(ctx context.Context, replica string) ([]SessionID, error)
	// Owned returns the live sessions the owner index lists for replica,
	// in one round trip.
	Owned(ctx context.Context, replica string) ([]SessionID, error)
	// Owners returns each session's stored owner and epoch, in the order
	// of ids (a zero Ownership for one that does not exist), in one round
	// trip (per node of a Cluster). It decodes no record.
	Owners(ctx context.Context, ids []SessionID) ([]Ownership, error)
	// Replicas returns the replicas whose owner index may list sessions.
	Replicas(ctx context.Context) ([]string, error)
	// Forget drops moved from replica's moved sessions and owned from its
	// owner index (entries found stale), and the replica from Replicas
	// when its index is then empty.
	Forget(ctx context.Context, replica string, moved, owned []SessionID) error
}

// Ownership is who owns a stored session, at which epoch; the zero value
// stands for a session that does not exist.
type Ownership struct {
	Owner string
	Epoch uint64
	Live  bool // the session has not ended
}

// ListFilter selects sessions; zero fields match all.
type ListFilter struct {
	ChannelARN string
	State      State
	// ViewerID, when set, keeps only the sessions of that viewer.
	ViewerID string
}

// EventRetention is how many events of a timeline a store keeps.
const EventRetention = 1000

// Signaler is the KVS side: channel resolution, ICE servers and the viewer
// signaling connection (package kvs, through sessionmgr/bind).
type Signaler interface {
	// Resolve turns a channel reference into a channel (ARN, MessageTTL).
	Resolve(ctx context.Context, ref ChannelRef) (Channel, error)
	// IceServers returns ICE servers for clientID, from cache unless refresh.
	IceServers(ctx context.Context, ch Channel, clientID string, refresh bool) (IceServers, error)
	// Dial opens a viewer signaling connection with clientID.
	Dial(ctx context.Context, ch Channel, clientID string) (SignalingConn, error)
	// ValidateOffer checks an SDP offer (parse, size) and returns its ICE
	// ufrag, which tells an ICE-restart offer from a duplicate.
	ValidateOffer(sdp string) (ufrag string, err error)
	// ValidateCandidate checks an ICE candidate (syntax, size).
	ValidateCandidate(c Candidate) error
}

// SignalingConn is one viewer signaling connection.
type SignalingConn interface {
	SendOffer(ctx context.Context, sdp string) error
	SendCandidate(ctx context.Context, c Candidate) error
	// Events delivers what KVS sends, each event by pointer (the actor
	// waits on it in a small frame); it is closed when the connection ends
	// for good.
	Events() <-chan *SignalEvent
	// Close closes the connection; idempotent.
	Close() error
}

// SignalKind is the kind of a SignalEvent.
type SignalKind int

// The signal kinds.
const (
	SignalUnknown     SignalKind = iota
	SignalAnswer                 // SDP
	SignalCandidate              // Candidate
	SignalRejected               // KVS refused a message (STATUS_RESPONSE); Detail says why
	SignalReconnected            // GO_AWAY or a dropped socket: reopened, same clientId
	SignalIceServers             // RECONNECT_ICE_SERVER: IceServers holds a fresh set
	SignalClosed                 // the connection ended for good; Err says why
)

// SignalEvent is one thing KVS said on a signaling connection.
type SignalEvent struct {
	Kind       SignalKind
	SDP        string
	Candidate  Candidate
	IceServers *IceServers
	Detail     string
	Err        error
}

// Lease is a clientId held on a channel (package clientid, through bind).
type Lease struct {
	ClientID string
	Channel  string
	Token    string
	Cooldown time.Duration
	// Collided: the preferred id was live or cooling down, so another
	// candidate was leased.
	Collided bool
}

// ClientIDs allocates clientIds unique per channel with a reuse cooldown.
type ClientIDs interface {
	// Acquire leases a clientId on the channel, preferring base, base-2, ...
	Acquire(ctx context.Context, channelARN, base string, messageTTL time.Duration) (Lease, error)
	// Renew extends the lease; it fails when the lease is no longer ours.
	Renew(ctx context.Context, l Lease) error
	// Release ends the lease; the id cools down before reuse.
	Release(ctx context.Context, l Lease) error
}

// LeaseReturner is a ClientIDs that can end a lease whose clientId never
// reached KVS (a create refused after the lease): the id is free at once,
// with no cooldown, since KVS never saw it.
type LeaseReturner interface {
	// Return ends l if it is still ours; the id is free at once.
	Return(ctx context.Context, l Lease) error
}

// PreparedLease is a clientId lease prepared but not taken: Lease as it
// will be once taken, taken by setting Key to Lease.Token when Key is
// absent (or already holds it), to live TTL. A store on the allocator's
// own Redis server takes it in the write that creates the session
// (LeaseTaker), saving the lease's round trip.
type PreparedLease struct {
	Lease Lease
	Key   string
	TTL   time.Duration
}

// LeasePreparer is a ClientIDs that can prepare its first-choice lease
// for a LeaseTaker: ok is false when it cannot (then Acquire).
type LeasePreparer interface {
	PrepareLease(channelARN, base string, messageTTL time.Duration) (pl PreparedLease, ok bool, err error)
	// AcquireTaken is Acquire after a LeaseTaker found the prepared
	// first choice taken (ErrLeaseTaken): the allocator need not try that
	// one alone again (a returning viewer whose clientId cools down).
	AcquireTaken(ctx context.Context, channelARN, base string, messageTTL time.Duration) (Lease, error)
}

// LeaseTaker is a Store that can take a PreparedLease in Create's write.
type LeaseTaker interface {
	// CreateTaking is Create that takes pl first, after Create's own
	// checks and before it writes: when pl's id is another's (live or
	// cooling down) it fails with ErrLeaseTaken and writes nothing.
	CreateTaking(ctx context.Context, s Session, limit int, pl PreparedLease, events ...Event) (Session, error)
	// TakesLeases reports whether CreateTaking works here: the store is
	// on one Redis server (not a Cluster).
	TakesLeases() bool
}

// Cluster is what a Manager needs to share sessions with other replicas:
// replica liveness and forwarding app messages to a session's owner
// (sessionmgr/redisreplicas). Without one the Manager is a single replica.
type Cluster interface {
	// Heartbeat marks replica alive for ttl.
	Heartbeat(ctx context.Context, replica string, ttl time.Duration) error
	// Alive reports whether replica's last heartbeat is still fresh.
	Alive(ctx context.Context, replica string) (bool, error)
	// Forward hands req to the owner replica and waits for its reply, at
	// most until ctx ends (ErrUnavailable when the owner does not answer).
	Forward(ctx context.Context, owner string, req Forwarded) (ForwardReply, error)
	// Serve delivers the requests forwarded to replica to handle until ctx
	// ends; handle's reply goes back to the forwarder.
	Serve(ctx context.Context, replica string, handle func(context.Context, Forwarded) ForwardReply) error
	// Pace takes a turn to open a signaling connection on channel, across
	// every replica: 0 when the turn is ours now, else how long to wait
	// before asking again. At most perSecond turns are given in any second.
	Pace(ctx context.Context, channel string, perSecond float64) (time.Duration, error)
}

// Forwarded is one request forwarded to a session's owner.
type Forwarded struct {
	Session SessionID  `json:"session"`
	Kind    string     `json:"kind"` // "app", "close", "attach", "detach"
	Msg     AppMessage `json:"msg"`
	// Stream is the attachment of "attach" and "detach", and From the
	// replica that forwards (where the app's stream is).
	Stream string `json:"stream,omitempty"`
	From   string `json:"from,omitempty"`
}

// ForwardReply is the owner's answer: the session after the request and
// the error's class (an ErrorCode name, "" for success).
type ForwardReply struct {
	Session Session `json:"session"`
	Err     string  `json:"err,omitempty"`
	Detail  string  `json:"detail,omitempty"`
}
