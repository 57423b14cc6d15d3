package redisstore

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/acme/viewersession/internal/rplumb"
	"github.com/acme/viewersession/sessionmgr"
)

// prefix starts every key: the service and the key layout's version.
const prefix = rplumb.Prefix

// The record hash's fields.
const (
	fieldSession  = "s"     // the Session as wire.Session JSON, without Owner and Epoch
	fieldEpoch    = "epoch" // decimal
	fieldOwner    = "owner"
	fieldTerminal = "term" // "1" when the state is terminal, else "0"
	fieldChannel  = "ch"   // the channel's ARN
	fieldSeq      = "seq"  // the last event's Seq, decimal; "0": none
	fieldIdem     = "idem" // the idempotency key, or ""
	fieldMember   = "m"    // the listing member
	fieldExpires  = "exp"  // Expires in Unix ms, or "" when zero
)

// validID reports whether id can name a session's keys: not empty, and
// without the braces that would change the keys' hash tag.
func validID(id sessionmgr.SessionID) bool {
	return id != "" && len(id) <= 256 && !strings.ContainsAny(string(id), "{}")
}

// recordKey is the session's record, a hash.
func recordKey(id sessionmgr.SessionID) string { return prefix + "{" + string(id) + "}:rec" }

// eventsKey is the session's timeline, a stream; it shares the record's
// slot.
func eventsKey(id sessionmgr.SessionID) string { return prefix + "{" + string(id) + "}:ev" }

// liveKey is the channel's live sessions, a zset scored by when each stops
// counting (Unix ms).
func liveKey(arn string) string { return prefix + "{ch:" + digest(arn) + "}:live" }

// channelListKey is the channel's listing, a zset of listMembers; it
// shares the live set's slot.
func channelListKey(arn string) string { return prefix + "{ch:" + digest(arn) + "}:list" }

// hintKey is the recovery step remembered for the channel's master, a
// string holding the step's name (sessionmgr.RecoveryStep.String), with
// the hint's TTL; it shares the live set's slot.
func hintKey(arn string) string { return prefix + "{ch:" + digest(arn) + "}:hint" }

// endedKey is the channel's ended sessions, a zset of session ids scored
// by when each ended (Unix ms); it shares the live set's slot.
func endedKey(arn string) string { return prefix + "{ch:" + digest(arn) + "}:ended" }

// allEndedKey is every ended session, a zset like endedKey's.
func allEndedKey() string { return prefix + "{ended}" }

// listKey is every session's listing, a zset of listMembers.
func listKey() string { return prefix + "{sessions}:list" }

// The owner index shares one slot, {owners}, so that one script keeps a
// replica's keys and the set of replicas consistent.

// replicasKey is the replicas whose owner index may list sessions, a set.
func replicasKey() string { return prefix + "{owners}" }

// ownedKey is replica's live sessions, a zset of session ids scored like
// the channels' live sets (when each stops counting, Unix ms).
func ownedKey(replica string) string { return prefix + "{owners}:" + replica + ":owned" }

// movedKey is the sessions taken over from replica, a zset of session ids
// scored by the takeover's time (Unix ms); it keeps movedKeep.
func movedKey(replica string) string { return prefix + "{owners}:" + replica + ":moved" }

// movedKeep is how long a takeover stays in the moved set of the replica
// it was taken from: long enough for a replica that lost its connection
// for a while (one that lost it for longer finds its heartbeat lapsed and
// checks every session it runs).
const movedKeep = 10 * time.Minute

// idemKey is the idempotency key of a (caller, request id) pair, a string
// holding the session id; "" when the pair is incomplete.
func idemKey(caller, requestID string) string {
	if caller == "" || requestID == "" {
		return ""
	}
	return prefix + "{idem:" + digest(strconv.Itoa(len(caller))+":"+caller+requestID) + "}"
}

// digest is a fixed-length, brace-free stand-in for ARNs and request ids
// in keys (rplumb.Digest).
func digest(s string) string { return rplumb.Digest(s) }

// A listing member orders sessions newest-last by byte order, so a zset of
// them with equal scores lists newest first with ZREVRANGEBYLEX: the
// created time as 20 digits of seconds (sign bit flipped, so negative
// times sort first) and 9 of nanoseconds, ':', then the session id, which
// breaks ties as sessionmgr's order does.

const memberTimeLen = 29

func listMember(created time.Time, id sessionmgr.SessionID) string {
	return fmt.Sprintf("%020d%09d:%s", uint64(created.Unix())^(1<<63), created.Nanosecond(), id)
}

// memberID returns the session id of a listing member.
func memberID(m string) (sessionmgr.SessionID, bool) {
	if len(m) <= memberTimeLen+1 || m[memberTimeLen] != ':' {
		return "", false
	}
	for _, c := range m[:memberTimeLen] {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	id := sessionmgr.SessionID(m[memberTimeLen+1:])
	return id, validID(id)
}

// memberTime returns the created time a listing member encodes.
func memberTime(m string) (time.Time, bool) {
	if _, ok := memberID(m); !ok {
		return time.Time{}, false
	}
	secs, err1 := strconv.ParseUint(m[:20], 10, 64)
	nanos, err2 := strconv.ParseInt(m[20:memberTimeLen], 10, 64)
	if err1 != nil || err2 != nil {
		return time.Time{}, false
	}
	return time.Unix(int64(secs^(1<<63)), nanos), true
}

// inFlight is how long after its creation a listing member without a
// record may be a create still in flight (on a Cluster the listing and the
// record are written on different nodes at once): younger members are
// never dropped for lacking a record.
const inFlight = time.Minute

// settled reports whether a listing member without a record is gone for
// good: older than inFlight by now (a member that cannot be read is).
func settled(m string, now time.Time) bool {
	t, ok := memberTime(m)
	return !ok || t.Before(now.Add(-inFlight))
}

// A cursor is the base64url of the listing member of a page's last
// session.

func formatCursor(member string) string { return base64.RawURLEncoding.EncodeToString([]byte(member)) }

func parseCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", fmt.Errorf("%w: malformed list cursor", sessionmgr.ErrInvalidArgument)
	}
	if _, ok := memberID(string(b)); !ok {
		return "", fmt.Errorf("%w: malformed list cursor", sessionmgr.ErrInvalidArgument)
	}
	return string(b), nil
}

// unixMillis is t in Unix milliseconds, as a decimal string; "" for the
// zero time.
func unixMillis(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// millis converts d to whole milliseconds, rounding up so that a TTL is
// never shorter than asked, and never zero.
func millis(d time.Duration) int64 {
	return max(1, int64((d+time.Millisecond-1)/time.Millisecond))
}
