// Package wire is the stored and forwarded form of sessionmgr's values:
// the session records and timeline events redisstore keeps in Redis, and
// the app messages and sessions redisreplicas forwards between replicas.
//
// Old and new replicas share Redis during a rolling update, so these are
// explicit, versioned structs, never JSON of the domain structs: every
// field has a JSON name of its own, so renaming a Go field changes
// nothing stored; enums are stored by name (the domain's String, parsed
// back with its Parse function), so reordering an enum changes nothing
// either, and a name the reader does not know decodes to the enum's zero
// (unknown) value instead of losing the record. Times are RFC 3339 in UTC
// with nanoseconds, durations Go duration strings ("1.5s"); zero values
// are left out.
//
// # Versions
//
//   - Version 1 (no "v" field) is what replicas before the change wrote:
//     the domain structs' JSON, Go field names as keys, enums as their
//     numbers in the order of that time, durations in nanoseconds. It is
//     frozen in v1.go (the numbers are read and written through the names
//     they had).
//   - Version 2 ("v":2) is what this code writes by default (v2.go).
//
// A replica before version 2 cannot read version 2. A rolling update from
// such a release therefore goes in two steps: first every replica runs
// this code writing version 1 (it reads both), then the writers switch to
// version 2 (redisstore.WithWriteVersion, redisreplicas.WithWriteVersion,
// the server's -redis-write-version).
//
// A reader takes a record without "v" as version 1, and any other as
// version 2: a later version may add fields (a reader ignores what it
// does not know) but not change the meaning of one; a change that must
// needs a new key layout (the "vs:v1:" prefix).
//
// The golden fixtures in sessionmgr/redisstore/testdata and
// sessionmgr/redisreplicas/testdata pin both versions byte for byte.
package wire

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/acme/viewersession/sessionmgr"
)

// Version is the version this package writes by default, and the newest
// it knows.
const Version = 2

// EncodeSession is s as a stored record of version (1 or 2; anything
// else is 2): without its Owner and Epoch, which a record keeps in fields
// of its own. It takes s by pointer and copies no Session on its stack:
// it runs at the bottom of CreateSession's, which would otherwise grow
// (a copy of the whole goroutine stack) for every create.
func EncodeSession(s *sessionmgr.Session, version int) ([]byte, error) {
	if version == 1 {
		return encodeSessionV1(s)
	}
	r := new(Session)
	r.from(s)
	r.Owner, r.Epoch = "", 0
	return marshalSession(r, s.ID)
}

// encodeSessionV1 is EncodeSession for version 1, in a frame of its own.
func encodeSessionV1(s *sessionmgr.Session) ([]byte, error) {
	c := *s
	c.Owner, c.Epoch = "", 0
	r := FromSessionV1(c)
	return marshalSession(&r, s.ID)
}

func marshalSession(r any, id sessionmgr.SessionID) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode session %s: %w", id, err)
	}
	return b, nil
}

// DecodeSession reads a session record of version 1 or 2.
func DecodeSession(data []byte) (sessionmgr.Session, error) {
	var r Session
	err := json.Unmarshal(data, &r)
	if r.V == 0 {
		var old SessionV1
		if err := json.Unmarshal(data, &old); err != nil {
			return sessionmgr.Session{}, fmt.Errorf("decode session (v1): %w", err)
		}
		return old.Session(), nil
	}
	if err != nil {
		return sessionmgr.Session{}, fmt.Errorf("decode session (v%d): %w", r.V, err)
	}
	return r.Session(), nil
}

// EncodeEvent is e as a timeline entry of version (1 or 2; anything else
// is 2).
func EncodeEvent(e sessionmgr.Event, version int) ([]byte, error) {
	var r any = FromEvent(e)
	if version == 1 {
		r = FromEventV1(e)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode event %d: %w", e.Seq, err)
	}
	return b, nil
}

// DecodeEvent reads a timeline entry of version 1 or 2.
func DecodeEvent(data []byte) (sessionmgr.Event, error) {
	var r Event
	err := json.Unmarshal(data, &r)
	if r.V == 0 {
		var old EventV1
		if err := json.Unmarshal(data, &old); err != nil {
			return sessionmgr.Event{}, fmt.Errorf("decode event (v1): %w", err)
		}
		return old.Event(), nil
	}
	if err != nil {
		return sessionmgr.Event{}, fmt.Errorf("decode event (v%d): %w", r.V, err)
	}
	return r.Event(), nil
}

// FormatTime is t in RFC 3339 with nanoseconds, in UTC; "" for the zero
// time.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// ParseTime is FormatTime's inverse; the zero time for "" or a text that
// is no time (a record is worth more than one of its times).
func ParseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// formatDuration is d as a Go duration string; "" for 0.
func formatDuration(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// parseDuration is formatDuration's inverse; 0 for "" or a text that is
// no duration.
func parseDuration(s string) time.Duration {
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0
	}
	return d
}

// name is an enum value's stored name: its String, or "" for the zero
// value and for a value without a name (which reads back as the zero
// value anyway).
func name[E interface {
	~int
	String() string
}](v E, parse func(string) E) string {
	if v == 0 {
		return ""
	}
	n := v.String()
	if parse(n) != v {
		return ""
	}
	return n
}
