package clientid

import (
	"crypto/rand"
	"fmt"
	"io"
	"strconv"
)

// randomLen is the length of a random id and of the random part of
// base-<random>: 20 of 36 symbols, about 103 bits.
const randomLen = 20

// randomAlphabet is what random ids are made of: lowercase letters and
// digits, so they are valid ids and never start with "AWS_".
const randomAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// randomString returns randomLen symbols of randomAlphabet read from r.
func randomString(r io.Reader) (string, error) {
	out := make([]byte, 0, randomLen)
	var buf [2 * randomLen]byte
	for len(out) < randomLen {
		if _, err := io.ReadFull(r, buf[:]); err != nil {
			return "", fmt.Errorf("random id: %w", err)
		}
		for _, b := range buf {
			// 252 = 7*36: rejecting the rest keeps every symbol equally likely.
			if b < 252 && len(out) < randomLen {
				out = append(out, randomAlphabet[b%36])
			}
		}
	}
	return string(out), nil
}

// newToken returns a fresh owner token: 128 random bits as base32 text.
func newToken() string { return rand.Text() }

// candidates lists the ids to try, in order, for a request whose sanitized
// base is base ("" = none): base, base-2 .. base-maxSuffix, base-random; or
// just random when there is no base.
func candidates(base string, maxSuffix int, random string) []ID {
	if base == "" {
		return []ID{ID(random)}
	}
	out := numbered(base, maxSuffix)
	if id, ok := withSuffix(base, []byte("-"+random)); ok {
		out = append(out, id)
	}
	return out
}

// numbered lists base, base-2 .. base-maxSuffix. A suffix that would push
// an id past MaxLen cuts the base instead.
func numbered(base string, maxSuffix int) []ID {
	out := make([]ID, 0, maxSuffix+1)
	out = append(out, ID(base))
	var num [24]byte
	for n := 2; n <= maxSuffix; n++ {
		suffix := strconv.AppendInt(append(num[:0], '-'), int64(n), 10)
		if id, ok := withSuffix(base, suffix); ok {
			out = append(out, id)
		}
	}
	return out
}

// withSuffix appends suffix to base, cutting base so the id fits MaxLen.
// It reports false when the cut id equals base itself (already a candidate).
func withSuffix(base string, suffix []byte) (ID, bool) {
	if len(base)+len(suffix) <= MaxLen {
		return ID(base + string(suffix)), true
	}
	id := base[:MaxLen-len(suffix)] + string(suffix)
	return ID(id), id != base
}
