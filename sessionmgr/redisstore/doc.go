// Package redisstore is a sessionmgr.Store on Redis, shared by every
// replica of the service: standalone, Sentinel or Cluster, all through a
// go-redis UniversalClient. It passes sessionmgr/storetest.
//
// # Keys
//
// Every key starts with "vs:v1:" (the service and the layout's version),
// and every key carries a hash tag, the part in braces that Redis Cluster
// hashes to pick the key's slot:
//
//	vs:v1:{<session id>}:rec    hash: the record (JSON, see Records) and
//	                            the fields the scripts test: epoch, owner,
//	                            terminal flag, channel ARN, last event seq,
//	                            expiry, ...
//	vs:v1:{<session id>}:ev     stream: the timeline, entry ID <seq>-0,
//	                            trimmed to sessionmgr.EventRetention
//	vs:v1:{ch:<h(ARN)>}:live    zset: the channel's live sessions, scored
//	                            by the time (ms) they stop counting
//	vs:v1:{ch:<h(ARN)>}:list    zset: the channel's sessions, for List
//	vs:v1:{ch:<h(ARN)>}:hint    string: the recovery step that worked for
//	                            the channel's master, by name, with its
//	                            TTL (PX)
//	vs:v1:{sessions}:list       zset: every session, for List without a
//	                            channel
//	vs:v1:{owners}:<replica>:owned
//	                            zset: the replica's live sessions (the owner
//	                            index), scored like the live sets
//	vs:v1:{owners}:<replica>:moved
//	                            zset: the sessions taken over from the
//	                            replica, scored by the takeover's time (ms),
//	                            kept movedKeep
//	vs:v1:{owners}              set: the replicas whose owner index may
//	                            list sessions
//	vs:v1:{idem:<h(caller, request id)>}
//	                            string: the session a CreateSession request
//	                            made, for the idempotency window (its TTL)
//	vs:v1:{<session id>}:tl     Pub/Sub channel, not a key: each appended
//	                            event's JSON, and an empty message when the
//	                            session is deleted
//
// h is the first 128 bits of SHA-256, in hex. Session IDs may not contain
// braces, so "{<session id>}" is always the whole tag.
//
// # Records
//
// The record's JSON and each event's (in the stream and in its
// notification) are sessionmgr/internal/wire's versioned structs, never
// JSON of the domain structs: version 2 ("v":2) is written, with its own
// field names and enums by name; version 1 (no "v", the domain structs'
// JSON that replicas before it wrote) is read as well, so that records
// and timelines an old replica left keep working during a rolling update
// (TestRollingUpdate). An old replica cannot read version 2: while old
// replicas run, write version 1 (WithWriteVersion(1): byte for byte what
// they write), then switch. The golden fixtures in testdata pin both.
//
// # Why no command crosses slots
//
// Each atomic step is one Lua script or one command whose keys share a
// hash tag, so they live in one slot on any Cluster:
//
//   - A session's record and timeline share the tag {<session id>}: Put,
//     Save, Append, Takeover and Delete check the epoch (the fence), the
//     sequence and the state and write the record and the stream in one
//     script (Save: an actor's turn, its events and the record together);
//     Create writes the record with its first events in one script;
//     Events reads both in one MULTI.
//   - A channel's live set and listing share {ch:<h>}: Create's
//     reservation drops the expired members, counts the rest against the
//     limit and adds the session to both in one script.
//   - The global listing and each idempotency key are alone in their slot.
//   - The owner index's keys share {owners}: Forget drops entries and,
//     when the index is empty, the replica, in one script.
//
// What spans slots is a sequence of such steps, ordered so that a failure
// between two of them leaves nothing a reader can trip on:
//
//   - Create sends its steps at once, in one pipeline (one round trip:
//     go-redis hands each node its part together): the channel's slot, the
//     record with its first events (failing on a taken ID), the listing and
//     the owner index. A request with an id then claims its idempotency key
//     (SET NX, a second round trip), so that the key only ever names a
//     session whose record exists. A refusal undoes what went through,
//     answering in the single server's order: a repeat (the request key
//     names a live session: that session), then a taken ID, then a full
//     channel. A listing member can thus exist for a moment without its
//     record, or outlive an undo that failed: List skips such members and
//     removes them.
//   - A terminal Put marks the record terminal, then leaves the live set
//     and its owner's index (one pipeline).
//   - Takeover sets the record's epoch and owner, then moves the session
//     from the old owner's index to the new one's and notes it in the old
//     owner's moved set (one script on {owners}). Index entries are hints
//     that readers check against the records (Owners), so one left
//     behind by a failure misleads nobody.
//   - Delete removes the record and timeline, then the index entries.
//
// On a single server (standalone, or Sentinel's master: the client is a
// *redis.Client) every key is on one server, and Create runs those steps
// in one script: one round trip, atomic (the sampled listing sweep and
// prune included); so do Takeover (the record and the owner index) and a
// Save or Put that changes the live set. On a Cluster they run as above.
//
// A replica that dies between the steps leaves at worst a live-set member
// without a live record (it holds a slot until its score passes) or an
// index member without a record (List skips and removes it; one Create in
// 16 also checks a few random listing members).
//
// # Liveness and expiry
//
// A live session's member in its channel's live set is scored by its
// Expires plus a grace (WithLiveGrace); the reservation script drops the
// members whose score has passed by the server's clock (TIME), so the
// sessions of a replica that crashed stop counting against the limit once
// their lifetime is over, even if no one takes them over. A live record
// expires at the later of its Expires and now, plus the retention; a
// terminal one expires the retention after its first terminal Put. The
// timeline always expires with its record. A session with a zero Expires
// counts and lives until it ends.
//
// # Timeouts and errors
//
// Every call is bounded by the caller's ctx and by WithTimeout (default
// 1s). Build the client with ContextTimeoutEnabled and short dial, read
// and write timeouts, or go-redis waits out its own ReadTimeout on a
// server that does not answer.
//
// # Waiting for events
//
// No call holds a pooled connection longer than one round trip, so the
// default pool serves any number of open streams. Events with wait waits
// on the Store's follower (follow.go): one subscription connection of its
// own, outside the pool, subscribed to the notification channels of the
// timelines somebody waits on, whatever the number of waiting calls. The
// append script publishes each event on its channel; the follower keeps a
// timeline's newest events in memory and wakes its readers, which take
// them from there. A reader reads the stream (XRANGE) when it starts, when
// the subscription is confirmed (again after a reconnect), when a
// notification shows a gap or the session was deleted, and after
// WithWaitSlice (default 10 min) without a reason, to notice an expired
// record. Close stops the follower; it also stops by itself a linger
// (WithLinger) after its last reader left.
//
// redis.Nil becomes sessionmgr.ErrNotFound, an unreachable or unready
// server (network errors, timeouts, LOADING, CLUSTERDOWN, TRYAGAIN, ...)
// an error wrapping sessionmgr.ErrUnavailable, the caller's own ctx ending
// its ctx.Err(); no go-redis type is wrapped in an error returned.
package redisstore
