package service

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/acme/viewersession/sessionmgr"
)

// Auth checks credentials: backend API keys (stored as SHA-256 hashes;
// several at once for rotation) and session tokens (Tokens; checked
// against the hash the session's record keeps). Comparisons are constant
// time; credentials are never logged.
type Auth struct {
	keys   [][sha256.Size]byte
	tokens *Tokens

	// Session tokens checked lately (by their SHA-256), so that a flood of
	// calls with one token costs one store read, not one each.
	checks singleflight.Group
	mu     sync.Mutex
	good   map[[sha256.Size]byte]time.Time // token hash -> valid until
}

// tokenCacheTTL is how long a checked token is taken as valid without
// reading the store again (an ended session's calls still fail on the
// session itself), and tokenCacheMax bounds the cache.
const (
	tokenCacheTTL = 5 * time.Second
	tokenCacheMax = 1 << 16
)

// authorize checks that token opens session sid: from the cache of recent
// checks, else one store read for all concurrent callers with the token.
// It fails with sessionmgr.ErrNotFound when the session does not exist
// and errPermissionDenied when the token is not its.
func (a *Auth) authorize(ctx context.Context, m *sessionmgr.Manager, sid sessionmgr.SessionID, token string) error {
	key := sha256.Sum256([]byte(token))
	now := time.Now()
	a.mu.Lock()
	until, ok := a.good[key]
	a.mu.Unlock()
	if ok && now.Before(until) {
		return nil
	}
	_, err, _ := a.checks.Do(string(key[:]), func() (any, error) {
		// Shared by concurrent callers: not cut short by the first one's
		// cancellation, bounded on its own.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		s, err := m.Get(ctx, sid)
		if err != nil {
			return nil, err
		}
		if !opens(token, s) {
			return nil, errPermissionDenied
		}
		return nil, nil
	})
	if err != nil {
		return err
	}
	a.mu.Lock()
	if a.good == nil || len(a.good) >= tokenCacheMax {
		a.good = map[[sha256.Size]byte]time.Time{}
	}
	a.good[key] = now.Add(tokenCacheTTL)
	a.mu.Unlock()
	return nil
}

// tokenOf is the token CreateSession hands out for s: "" when this
// replica's secret does not derive the hash s's record keeps (an
// idempotent repeat of a create on a replica with another secret), which
// is logged without the token.
func (a *Auth) tokenOf(ctx context.Context, log *slog.Logger, s sessionmgr.Session) string {
	tok, ok := a.tokens.of(s)
	if !ok {
		log.WarnContext(ctx, "token secret differs from the one the session was created with; token not returned", "session_id", string(s.ID))
	}
	return tok
}

// NewAuth returns an Auth accepting the given API keys and the session
// tokens of tokens (which must not be nil; its Hash is the session
// manager's Config.TokenHash). With no API key, every backend call is
// refused (fail closed).
func NewAuth(apiKeys []string, tokens *Tokens) *Auth {
	a := &Auth{tokens: tokens}
	for _, k := range apiKeys {
		if k = strings.TrimSpace(k); k != "" {
			a.keys = append(a.keys, sha256.Sum256([]byte(k)))
		}
	}
	return a
}

// Keys reports how many API keys are configured.
func (a *Auth) Keys() int { return len(a.keys) }

// principal is who is calling.
type principal struct {
	caller  string // backend: "key:<first 8 bytes of the key's hash>"
	token   string // app: the bearer token (checked per session)
	backend bool
}

var (
	errNoCredentials = errors.New("missing credentials: send `authorization: Bearer <api key or session token>`")
	errBadKey        = errors.New("invalid API key")
)

// bearerMD returns the bearer credential of a call's metadata.
func bearerMD(md metadata.MD) (string, bool) {
	for _, v := range md.Get("authorization") {
		scheme, cred, ok := strings.Cut(v, " ")
		if ok && strings.EqualFold(scheme, "bearer") && strings.TrimSpace(cred) != "" {
			return strings.TrimSpace(cred), true
		}
	}
	return "", false
}

// identify classifies the call's bearer credential: a configured API key
// makes a backend principal; anything else is a candidate session token.
func (a *Auth) identify(ctx context.Context) (principal, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	return a.identifyMD(md)
}

func (a *Auth) identifyMD(md metadata.MD) (principal, error) {
	cred, ok := bearerMD(md)
	if !ok {
		return principal{}, unauthenticated(errNoCredentials)
	}
	sum := sha256.Sum256([]byte(cred))
	match := 0
	for i := range a.keys {
		match |= subtle.ConstantTimeCompare(sum[:], a.keys[i][:])
	}
	if match == 1 {
		return principal{backend: true, caller: "key:" + hex.EncodeToString(sum[:8])}, nil
	}
	return principal{token: cred}, nil
}

// backend requires an API key. A valid session token is recognised and
// refused with PERMISSION_DENIED (it opens its own session only); anything
// else is UNAUTHENTICATED.
func (a *Auth) backend(ctx context.Context, m *sessionmgr.Manager) (principal, error) {
	p, err := a.identify(ctx)
	if err != nil {
		return p, err
	}
	if p.backend {
		return p, nil
	}
	if sid, ok := tokenSession(p.token); ok {
		err := a.authorize(ctx, m, sid, p.token)
		if err == nil {
			return p, statusOf(errPermissionDenied, "a session token cannot call backend RPCs; use an API key")
		}
		if !errors.Is(err, errPermissionDenied) && !errors.Is(err, sessionmgr.ErrNotFound) {
			// The store could not tell: not the caller's fault.
			return p, authUnavailable(err)
		}
	}
	return p, unauthenticated(errBadKey)
}

// session requires an API key or the token of session id. A token that is
// no session's is UNAUTHENTICATED; a valid token of another session is
// PERMISSION_DENIED.
func (a *Auth) session(ctx context.Context, m *sessionmgr.Manager, id sessionmgr.SessionID) (principal, error) {
	p, err := a.identify(ctx)
	if err != nil || p.backend {
		return p, err
	}
	sid, ok := tokenSession(p.token)
	if !ok {
		return p, unauthenticated(errors.New("invalid API key or session token"))
	}
	if err := a.authorize(ctx, m, sid, p.token); err != nil {
		if errors.Is(err, errPermissionDenied) || errors.Is(err, sessionmgr.ErrNotFound) {
			return p, unauthenticated(errors.New("invalid API key or session token"))
		}
		return p, authUnavailable(err)
	}
	if sid != id {
		return p, statusOf(errPermissionDenied, "this session token does not open "+sessionName(id))
	}
	return p, nil
}

// authUnavailable is the status of a token that could not be checked
// (the session store is out): UNAVAILABLE with ErrorInfo and RetryInfo,
// never a verdict on the credential.
func authUnavailable(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	return statusOf(sessionmgr.ErrUnavailable, "the session token cannot be checked right now (the session store is unreachable); retry")
}

func unauthenticated(err error) error {
	return statusOf(errUnauthenticated, err.Error())
}
