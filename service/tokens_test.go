package service

import (
	"strings"
	"testing"

	"github.com/acme/viewersession/sessionmgr"
)

const tokenID sessionmgr.SessionID = "abcdefghijklmnopqrstuvwxyz"

// TestTokensOpenTheirSession: a token names its session, opens the record
// that keeps its Hash and no other, and is the same for the same secret.
func TestTokensOpenTheirSession(t *testing.T) {
	a := NewTokens([]byte("secret a, sixteen bytes or more"))
	tok := a.mint(tokenID)
	if id, ok := tokenSession(tok); !ok || id != tokenID {
		t.Errorf("tokenSession(mint(%s)) = %q, %v; want the id", tokenID, id, ok)
	}
	rec := sessionmgr.Session{ID: tokenID, TokenHash: a.Hash(tokenID)}
	if !opens(tok, rec) {
		t.Error("the session's token does not open its record")
	}
	other := sessionmgr.SessionID(strings.Repeat("b", 26))
	if opens(a.mint(other), rec) {
		t.Error("another session's token opens the record")
	}
	if opens("", sessionmgr.Session{ID: tokenID}) {
		t.Error(`"" opens a record without a hash`)
	}
	if got, ok := NewTokens([]byte("secret a, sixteen bytes or more")).of(rec); !ok || got != tok {
		t.Errorf("of(record) with the same secret = %q, %v; want the first token", got, ok)
	}
}

// TestTokensOutliveTheSecret: a replica with another secret cannot mint
// the token of a record it did not create (of gives ""), but the token
// still opens the record, as verification uses the stored hash.
func TestTokensOutliveTheSecret(t *testing.T) {
	a, b := NewTokens([]byte("secret a, sixteen bytes or more")), NewTokens([]byte("secret b, sixteen bytes or more"))
	rec := sessionmgr.Session{ID: tokenID, TokenHash: a.Hash(tokenID)}
	if got, ok := b.of(rec); ok || got != "" {
		t.Errorf("of(record) with another secret = %q, %v; want \"\", false", got, ok)
	}
	if !opens(a.mint(tokenID), rec) {
		t.Error("the token does not open its record once the secret changed")
	}
	// An empty secret is random, per Tokens.
	x, y := NewTokens(nil), NewTokens(nil)
	if string(x.Hash(tokenID)) == string(y.Hash(tokenID)) {
		t.Error("two Tokens without a secret derive the same token")
	}
}

func TestTokenSession(t *testing.T) {
	mac := strings.Repeat("A", 43)
	tests := []struct {
		give string
		want bool
	}{
		{string(tokenID) + "." + mac, true},
		{string(tokenID) + mac, false},                // no dot
		{string(tokenID) + "." + mac[:42], false},     // short MAC
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZ0." + mac, false}, // not a session id
		{"", false},
	}
	for _, tt := range tests {
		id, ok := tokenSession(tt.give)
		if ok != tt.want || ok && id != tokenID {
			t.Errorf("tokenSession(%q) = %q, %v; want %v", tt.give, id, ok, tt.want)
		}
	}
}
