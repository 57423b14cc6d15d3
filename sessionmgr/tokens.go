package sessionmgr

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// Session tokens are the service's: it mints and verifies them, and the
// Manager stores the hash Config.TokenHash gives for a new session's id
// (Session.TokenHash), knowing neither the token's form nor its secret.

// noToken is Config.TokenHash's default, and a probe's: the hash of a
// random token that nobody holds, so no token opens the session.
func noToken(SessionID) []byte {
	var secret [32]byte
	_, _ = rand.Read(secret[:])
	h := sha256.Sum256([]byte(base64.RawURLEncoding.EncodeToString(secret[:])))
	return h[:]
}
