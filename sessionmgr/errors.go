package sessionmgr

import (
	"errors"
	"fmt"
)

// Errors callers branch on with errors.Is. The service maps each to a gRPC
// status in one place (service/errors.go).
var (
	// ErrNotFound: no such session (or it expired after closing).
	ErrNotFound = errors.New("session not found")
	// ErrAlreadyExists: a session with that id exists.
	ErrAlreadyExists = errors.New("session already exists")
	// ErrInvalidArgument: the request is malformed; the wrapping error says how.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrChannelFull: the channel has its maximum of live sessions.
	ErrChannelFull = errors.New("channel full")
	// ErrSessionClosed: the session has ended (FAILED or CLOSED).
	ErrSessionClosed = errors.New("session closed")
	// ErrNotJoined: an app message before join.
	ErrNotJoined = errors.New("session not joined: send join first")
	// ErrAlreadyJoined: join on a stream that has joined.
	ErrAlreadyJoined = errors.New("already joined")
	// ErrOfferInFlight: an offer while another awaits its answer.
	ErrOfferInFlight = errors.New("an offer is already awaiting its answer")
	// ErrOfferNotExpected: an offer the session did not ask for (after the
	// answer, without a renegotiate).
	ErrOfferNotExpected = errors.New("offer not expected: wait for a renegotiate")
	// ErrPermissionDenied: the token does not open this session.
	ErrPermissionDenied = errors.New("token does not grant access to this session")
	// ErrUnauthenticated: no valid credentials.
	ErrUnauthenticated = errors.New("missing or invalid credentials")
	// ErrUnavailable: a dependency (store, KVS) cannot be reached; retry.
	ErrUnavailable = errors.New("temporarily unavailable")
	// ErrThrottled: KVS throttled us past the retry budget; retry later.
	ErrThrottled = errors.New("kvs throttled")
	// ErrChannelNotFound: the KVS channel does not exist.
	ErrChannelNotFound = errors.New("channel not found")
	// ErrAccessDenied: our AWS credentials may not use the channel.
	ErrAccessDenied = errors.New("access to channel denied")
	// ErrClientIDExhausted: no clientId could be allocated on the channel.
	ErrClientIDExhausted = errors.New("no clientId available on the channel")
	// ErrShuttingDown: the manager is closing; new work is refused.
	ErrShuttingDown = errors.New("server shutting down")
	// ErrConflict: a store write lost a race (the record changed under it).
	ErrConflict = errors.New("conflict")
)

var (
	errStale        = errors.New("stale input")
	errUnknownState = errors.New("unknown state")
)

// invalid wraps ErrInvalidArgument with the field at fault.
func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// FieldError is an invalid request field. It wraps ErrInvalidArgument.
type FieldError struct {
	Field  string // proto field path, e.g. "options.answer_timeout"
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalidArgument) true.
func (e *FieldError) Unwrap() error { return ErrInvalidArgument }
