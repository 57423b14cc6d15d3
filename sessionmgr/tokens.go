package sessionmgr

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
)

// Authorize checks a session token in constant time: ErrNotFound when the
// session does not exist, ErrPermissionDenied when the token is not its.
func (m *Manager) Authorize(ctx context.Context, id SessionID, token string) error {
	s, err := m.store.Get(ctx, id)
	if err != nil {
		return err
	}
	if token == "" || subtle.ConstantTimeCompare(hashToken(token), s.TokenHash) != 1 {
		return ErrPermissionDenied
	}
	return nil
}

// token derives a session's token: the session id, a dot, and
// HMAC-SHA256(secret, id) in base64url (256 bits). The id part lets the
// service tell "another session's token" from "no token at all"; deriving
// the rest lets an idempotent repeat of CreateSession hand the same token
// back without storing it. Only its hash is stored, and verification uses
// the hash, so tokens outlive a change of secret.
func (m *Manager) token(id SessionID) string {
	mac := hmac.New(sha256.New, m.cfg.TokenSecret)
	mac.Write([]byte("viewersession/session-token/v1:" + string(id)))
	return string(id) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// TokenSession returns the session a token claims to open (unverified:
// Authorize checks it).
func TokenSession(token string) (SessionID, bool) {
	id, secret, ok := strings.Cut(token, ".")
	if !ok || !ValidSessionID(id) || len(secret) != 43 {
		return "", false
	}
	return SessionID(id), true
}

func hashToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}
