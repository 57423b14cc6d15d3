package sessionmgr

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// Session tokens are the service's: it mints and verifies them, and the
// Manager stores the hash Config.TokenHash gives for a new session's id
// (Session.TokenHash), knowing neither the token's form nor its secret.

// noToken is Config.TokenHash's default: the hash of a random token that
// nobody holds, so no token opens the session.
func noToken(SessionID) []byte {
	var secret [32]byte
	_, _ = rand.Read(secret[:])
	return hashToken(base64.RawURLEncoding.EncodeToString(secret[:]))
}

// hashToken is an opaque hash of random material nobody keeps (a probe's
// record, noToken): a hash no token opens.
func hashToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}
