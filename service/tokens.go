package service

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"

	"github.com/acme/viewersession/sessionmgr"
)

// Tokens mints, parses and verifies session tokens. A token is the
// session id, a dot, and HMAC-SHA256(secret, id) in base64url (256 bits).
// The id part lets Auth tell "another session's token" from "no token at
// all"; deriving the rest lets an idempotent repeat of CreateSession hand
// the same token back without storing it. The session's record keeps only
// the token's SHA-256 (Hash, which sessionmgr is given through
// sessionmgr.Config.TokenHash), and verification uses that hash, so a
// token outlives a change of secret. Tokens is immutable and safe for
// concurrent use; the secret and the tokens are never logged.
type Tokens struct {
	secret []byte
}

// NewTokens returns the Tokens of secret. Replicas must share the secret
// for an idempotent CreateSession repeat on another replica to return the
// token; an empty secret is replaced by 32 random bytes (this process
// only).
func NewTokens(secret []byte) *Tokens {
	if len(secret) == 0 {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
	}
	return &Tokens{secret: append([]byte(nil), secret...)}
}

// Hash is the hash a new session's record keeps for session id: the
// SHA-256 of the token Mint gives. It is the value of
// sessionmgr.Config.TokenHash.
func (t *Tokens) Hash(id sessionmgr.SessionID) []byte { return hashToken(t.mint(id)) }

// mint derives session id's token.
func (t *Tokens) mint(id sessionmgr.SessionID) string {
	mac := hmac.New(sha256.New, t.secret)
	mac.Write([]byte("viewersession/session-token/v1:" + string(id)))
	return string(id) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// of is the token of s when this secret derives the hash s's record
// keeps, else "" (a session created by a replica with another secret).
func (t *Tokens) of(s sessionmgr.Session) (string, bool) {
	tok := t.mint(s.ID)
	if !opens(tok, s) {
		return "", false
	}
	return tok, true
}

// tokenSession returns the session a token claims to open (unverified:
// opens checks it).
func tokenSession(token string) (sessionmgr.SessionID, bool) {
	id, mac, ok := strings.Cut(token, ".")
	if !ok || !sessionmgr.ValidSessionID(id) || len(mac) != 43 {
		return "", false
	}
	return sessionmgr.SessionID(id), true
}

// opens reports, in constant time, whether token is the one whose hash s's
// record keeps.
func opens(token string, s sessionmgr.Session) bool {
	return token != "" && subtle.ConstantTimeCompare(hashToken(token), s.TokenHash) == 1
}

func hashToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}
