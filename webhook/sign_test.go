package webhook

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestSignGolden pins the signature scheme: receivers in other languages
// implement it from docs/WEBHOOKS.md, so it must never change silently.
func TestSignGolden(t *testing.T) {
	got := Sign([]byte("0123456789abcdef0123456789abcdef"), time.Unix(1767225600, 0), []byte(`{"id":"evt_1"}`))
	const want = "t=1767225600,v1=cef25695720482d26c7b8bdc4d439b31ac373c45f257fbfca94e19e13296a341"
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	body := []byte(`{"id":"evt_1","type":"session.created"}`)
	signedAt := time.Unix(1767225600, 0)
	good := Sign(secret, signedAt, body)
	_, v1, _ := strings.Cut(good, ",")
	tests := []struct {
		name   string
		secret []byte
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"valid", secret, good, body, signedAt.Add(time.Minute), nil},
		{"valid at the window's edge", secret, good, body, signedAt.Add(DefaultTolerance), nil},
		{"valid with a rotated second signature", secret, good + ",v1=" + strings.Repeat("00", 32), body, signedAt, nil},
		{"valid with spaces", secret, strings.ReplaceAll(good, ",", ", "), body, signedAt, nil},
		{"body changed", secret, good, []byte(`{"id":"evt_2","type":"session.created"}`), signedAt, ErrBadSignature},
		{"other secret", []byte("another secret of 32 bytes......"), good, body, signedAt, ErrBadSignature},
		{"timestamp changed", secret, "t=1767225601," + v1, body, signedAt, ErrBadSignature},
		{"too old", secret, good, body, signedAt.Add(DefaultTolerance + time.Second), ErrTooOld},
		{"from the future", secret, good, body, signedAt.Add(-DefaultTolerance - time.Second), ErrTooOld},
		{"empty header", secret, "", body, signedAt, ErrNoSignature},
		{"no timestamp", secret, v1, body, signedAt, ErrNoSignature},
		{"no signature", secret, "t=1767225600", body, signedAt, ErrNoSignature},
		{"signature not hex", secret, "t=1767225600,v1=zz", body, signedAt, ErrNoSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.secret, tt.header, tt.body, tt.now, DefaultTolerance)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Verify(%q) = %v, want %v", tt.header, err, tt.want)
			}
		})
	}
}
