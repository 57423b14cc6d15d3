package redisstore

import (
	"strings"
	"testing"
	"time"

	"github.com/acme/viewersession/sessionmgr"
)

// hashTag is the part of key that Redis Cluster hashes: the text between
// the first '{' and the first '}' after it, when not empty, else the key.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// TestKeysShareSlots pins the key layout: the keys each script touches
// share a hash tag, and the kinds of keys do not.
func TestKeysShareSlots(t *testing.T) {
	const id sessionmgr.SessionID = "0123456789abcdefghijklmnop"
	const arn = "arn:aws:kinesisvideo:us-west-2:123456789012:channel/front-door/1700000000000"
	tests := []struct {
		name    string
		give    []string
		wantTag string
	}{
		{name: "record and timeline", give: []string{recordKey(id), eventsKey(id)}, wantTag: string(id)},
		{name: "live set, channel listing and recovery hint", give: []string{liveKey(arn), channelListKey(arn), hintKey(arn)}, wantTag: "ch:" + digest(arn)},
		{name: "listing", give: []string{listKey()}, wantTag: "sessions"},
		{name: "owner index", give: []string{replicasKey(), ownedKey("replica-a"), movedKey("replica-a"), ownedKey("b{x}")}, wantTag: "owners"},
		{name: "idempotency key", give: []string{idemKey("caller", "request")}, wantTag: "idem:" + digest("6:callerrequest")},
	}
	seen := make(map[string]string)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range tt.give {
				if !strings.HasPrefix(k, "vs:v1:") {
					t.Errorf("key %q lacks the prefix vs:v1:", k)
				}
				if got := hashTag(k); got != tt.wantTag {
					t.Errorf("hashTag(%q) = %q, want %q", k, got, tt.wantTag)
				}
			}
			if other, ok := seen[tt.wantTag]; ok {
				t.Errorf("%s and %s share the tag %q", tt.name, other, tt.wantTag)
			}
			seen[tt.wantTag] = tt.name
		})
	}
	if got := idemKey("caller", ""); got != "" {
		t.Errorf(`idemKey("caller", "") = %q, want ""`, got)
	}
	if a, b := idemKey("a", "b\x00c"), idemKey("a\x00b", "c"); a == b {
		t.Errorf("idemKey does not tell (a, b\\0c) from (a\\0b, c): both %q", a)
	}
}

// TestListMemberOrder checks that listing members sort as List's order:
// by created time, then by id, across the sign of Unix time.
func TestListMemberOrder(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ordered := []struct {
		created time.Time
		id      sessionmgr.SessionID
	}{
		{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), "z"},
		{time.Unix(-1, 999_999_999), "a"},
		{time.Unix(0, 0), "a"},
		{base, "a"},
		{base, "b"},
		{base.Add(time.Nanosecond), "a"},
		{base.Add(time.Second), "a"},
		{time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC), "a"},
	}
	for i := 1; i < len(ordered); i++ {
		a := listMember(ordered[i-1].created, ordered[i-1].id)
		b := listMember(ordered[i].created, ordered[i].id)
		if a >= b {
			t.Errorf("listMember %d = %q, not below listMember %d = %q", i-1, a, i, b)
		}
	}
	for _, o := range ordered {
		m := listMember(o.created, o.id)
		if id, ok := memberID(m); !ok || id != o.id {
			t.Errorf("memberID(%q) = %q, %t; want %q, true", m, id, ok, o.id)
		}
		c, err := parseCursor(formatCursor(m))
		if err != nil || c != m {
			t.Errorf("parseCursor(formatCursor(%q)) = %q, %v", m, c, err)
		}
	}
}

func TestMemberIDMalformed(t *testing.T) {
	for _, give := range []string{"", "x", strings.Repeat("1", 29) + ":", strings.Repeat("1", 29) + "-id", strings.Repeat("a", 29) + ":id", strings.Repeat("1", 29) + ":{id}"} {
		if id, ok := memberID(give); ok {
			t.Errorf("memberID(%q) = %q, true; want false", give, id)
		}
	}
}

func TestMemberTime(t *testing.T) {
	created := time.Date(2026, 12, 5, 22, 30, 1, 123456789, time.UTC)
	m := listMember(created, "abc")
	got, ok := memberTime(m)
	if !ok || !got.Equal(created) {
		t.Fatalf("memberTime(%q) = %v, %v; want %v", m, got, ok, created)
	}
	if settled(m, created.Add(inFlight/2)) {
		t.Errorf("a member %v old is settled, want in flight", inFlight/2)
	}
	if !settled(m, created.Add(2*inFlight)) {
		t.Errorf("a member %v old is in flight, want settled", 2*inFlight)
	}
	if _, ok := memberTime("garbage"); ok {
		t.Errorf("memberTime(garbage) ok")
	}
}
