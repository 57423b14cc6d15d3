// Package clientid gives KVS signaling clientIds to viewer sessions: the
// rules a clientId must follow, and an allocator that keeps ids unique per
// channel and never hands an id out again until a cooldown has passed.
//
// Why the cooldown: KVS lets the newest connection with a clientId win and
// keeps undelivered messages for the channel's MessageTtlSeconds, and the
// common camera firmware ignores a new offer from an id whose old session is
// still alive, so a viewer that comes back with an id it used moments ago
// gets no answer. An id is therefore reused only after max(DefaultCooldown,
// MessageTtlSeconds) has passed since it was released, or since its lease
// expired when its owner died.
//
// Two allocators behave the same: Redis for many replicas and Memory for a
// single replica and -dev; one conformance suite checks both.
package clientid

import (
	"fmt"
	"hash/fnv"
	"strings"
	"unicode/utf8"
)

// MaxLen is the longest valid clientId, in bytes (all valid bytes are ASCII).
const MaxLen = 256

// reservedPrefix may not start a clientId, in any case.
const reservedPrefix = "AWS_"

// ID is a valid KVS clientId: 1..256 characters of [a-zA-Z0-9_.-], not
// starting with "AWS_" in any case. Only Parse, Sanitize and the allocators
// produce IDs from strings; a conversion ID(s) is the caller's promise.
type ID string

// String returns the id as a plain string.
func (id ID) String() string { return string(id) }

// Parse checks that s is a valid clientId and returns it as an ID.
// Its errors wrap ErrInvalid and say what is wrong.
//
// The rules are those of ConnectAsViewer's X-Amz-ClientId:
// https://docs.aws.amazon.com/kinesisvideostreams-webrtc-dg/latest/devguide/kvswebrtc-websocket-apis1.html
func Parse(s string) (ID, error) {
	if err := check(s); err != nil {
		return "", err
	}
	return ID(s), nil
}

func check(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty", ErrInvalid)
	case len(s) > MaxLen:
		return fmt.Errorf("%w: %d bytes long, at most %d", ErrInvalid, len(s), MaxLen)
	}
	for i := 0; i < len(s); i++ {
		if !idByte(s[i]) {
			r, _ := utf8.DecodeRuneInString(s[i:])
			return fmt.Errorf("%w: character %q at byte %d", ErrInvalid, r, i)
		}
	}
	if hasReservedPrefix(s) {
		return fmt.Errorf("%w: starts with %q", ErrInvalid, s[:len(reservedPrefix)])
	}
	return nil
}

// idByte reports whether b may appear in a clientId.
func idByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
		b == '_' || b == '.' || b == '-'
}

func hasReservedPrefix(s string) bool {
	return len(s) >= len(reservedPrefix) && strings.EqualFold(s[:len(reservedPrefix)], reservedPrefix)
}

// emptySanitized is what Sanitize makes of the empty string.
const emptySanitized = "viewer"

// Sanitize turns any string (a viewer_id with unicode, spaces, the ':' of an
// STS user id, or too long) into a valid clientId base. It is deterministic
// and never returns an invalid or empty id:
//
//   - a valid id is returned unchanged;
//   - "" becomes "viewer";
//   - every run of characters outside [a-zA-Z0-9_.-] (and every invalid
//     UTF-8 byte) becomes one '_';
//   - a result starting with "AWS_" in any case gets the prefix "x-";
//   - a result longer than 256 bytes is cut to 247 and ends with '-' and 8
//     hex digits of a hash of the whole input, so long inputs that share a
//     prefix stay apart.
//
// Different inputs may sanitize to the same base; the allocator keeps the
// ids it hands out unique regardless.
func Sanitize(s string) string {
	if check(s) == nil {
		return s
	}
	if s == "" {
		return emptySanitized
	}
	var b strings.Builder
	b.Grow(min(len(s), MaxLen+1) + 2)
	replaced := false // the last byte written is a replacement
	for i := 0; i < len(s); i++ {
		if idByte(s[i]) {
			b.WriteByte(s[i])
			replaced = false
		} else if !replaced {
			b.WriteByte('_')
			replaced = true
		}
		// A multi-byte rune is a run of non-id bytes: one '_' in all.
	}
	out := b.String()
	if hasReservedPrefix(out) {
		out = "x-" + out
	}
	if len(out) > MaxLen {
		h := fnv.New32a()
		_, _ = h.Write([]byte(s))
		out = fmt.Sprintf("%s-%08x", out[:MaxLen-9], h.Sum32())
	}
	return out
}
