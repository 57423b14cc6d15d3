package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader is the request header that carries the signature:
//
//	X-VSS-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//
// The timestamp is the time of the attempt (each retry is signed again),
// so a receiver can refuse replays older than its window.
const SignatureHeader = "X-VSS-Signature"

// DefaultTolerance is the replay window Verify is meant to be used with: a
// request signed more than 5 minutes before (or after) the receiver's
// clock is refused.
const DefaultTolerance = 5 * time.Minute

// Errors Verify returns.
var (
	// ErrNoSignature: the header is missing or has no t= or no v1=.
	ErrNoSignature = errors.New("webhook: no signature")
	// ErrBadSignature: no v1= value matches the body and the secret.
	ErrBadSignature = errors.New("webhook: signature does not match")
	// ErrTooOld: the timestamp is outside the replay window.
	ErrTooOld = errors.New("webhook: timestamp outside the replay window")
)

// Sign returns the SignatureHeader value of body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a SignatureHeader value against the raw request body (read
// it whole, before any JSON decoding): some v1= value must be the body's
// HMAC with secret, in constant time, and the timestamp must be within
// tolerance of now (use DefaultTolerance; 0 means no window, for tests
// only). Receivers call it before they trust the body.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var (
		ts   string
		sigs [][]byte
	)
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrNoSignature
	}
	want := mac(secret, ts, body)
	matched := false
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			matched = true
		}
	}
	if !matched {
		return ErrBadSignature
	}
	if tolerance > 0 {
		if age := now.Sub(time.Unix(unix, 0)); age > tolerance || age < -tolerance {
			return fmt.Errorf("%w: signed %v ago, the window is %v", ErrTooOld, age.Round(time.Second), tolerance)
		}
	}
	return nil
}
