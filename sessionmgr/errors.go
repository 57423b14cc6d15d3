package sessionmgr

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	// ErrLeaseTaken: a PreparedLease's clientId is another's lease or
	// cooling down (LeaseTaker.CreateTaking); Create then acquires one.
	ErrLeaseTaken = errors.New("prepared clientId lease taken")
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
	// ErrUnavailable: a dependency (store, KVS) cannot be reached; retry.
	ErrUnavailable = errors.New("temporarily unavailable")
	// ErrThrottled: KVS throttled us past the retry budget; retry later.
	ErrThrottled = errors.New("kvs throttled")
	// ErrChannelNotFound: the KVS channel does not exist.
	ErrChannelNotFound = errors.New("channel not found")
	// ErrAccessDenied: our AWS credentials may not use the channel.
	ErrAccessDenied = errors.New("access to channel denied")
	// ErrCredentials: the service cannot load AWS credentials at all (a
	// configuration problem: retrying does not help).
	ErrCredentials = errors.New("AWS credentials cannot be loaded")
	// ErrInvalidRegion: the channel's region is not an AWS region name.
	ErrInvalidRegion = errors.New("invalid region")
	// ErrClientIDExhausted: no clientId could be allocated on the channel.
	ErrClientIDExhausted = errors.New("no clientId available on the channel")
	// ErrShuttingDown: the manager is closing; new work is refused.
	ErrShuttingDown = errors.New("server shutting down")
	// ErrConflict: a store write lost a race (the record changed under it).
	// ErrFenced and ErrSeqConflict say which race; both are ErrConflict.
	ErrConflict = errors.New("conflict")
	// ErrFenced: a store write was refused because the session's stored
	// epoch is not the writer's: another replica took it over.
	ErrFenced = fmt.Errorf("%w: fenced: the session has a newer owner", ErrConflict)
	// ErrSeqConflict: a timeline write's sequence does not follow the
	// stored one, at the writer's own epoch.
	ErrSeqConflict = fmt.Errorf("%w: the timeline's sequence moved on", ErrConflict)
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

// publicErr is what an app is told of a dependency's error: its class in
// plain words, never the error's own text (which can carry internal
// addresses and URLs); the caller logs err with the session id.
func publicErr(err error) string {
	switch {
	case errors.Is(err, ErrChannelNotFound):
		return "the channel does not exist"
	case errors.Is(err, ErrAccessDenied):
		return "the service may not use this channel"
	case errors.Is(err, ErrCredentials):
		return "the service cannot load its AWS credentials"
	case errors.Is(err, ErrThrottled):
		return "KVS throttled the service"
	case errors.Is(err, ErrInvalidArgument):
		return "KVS refused the request as invalid"
	case errors.Is(err, context.DeadlineExceeded):
		return "KVS did not answer in time"
	}
	return "a dependency (KVS or the session store) could not be reached"
}

// errFenced: the actor lost its session to another replica mid-call; the
// caller routes the request again.
var errFenced = errors.New("session moved to another replica")

// errNotOwner: a forwarded request reached a replica that does not run the
// session (any more).
var errNotOwner = errors.New("not the owner of the session")

// errOwnerDraining: a join forwarded to an owner that drains; the
// forwarder takes the session over.
var errOwnerDraining = errors.New("the owner replica is draining")

// errorCodes name the sentinels that cross replicas in a ForwardReply.
var errorCodes = map[string]error{
	"NOT_FOUND": ErrNotFound, "INVALID_ARGUMENT": ErrInvalidArgument, "SESSION_CLOSED": ErrSessionClosed,
	"NOT_JOINED": ErrNotJoined, "ALREADY_JOINED": ErrAlreadyJoined, "OFFER_IN_FLIGHT": ErrOfferInFlight,
	"OFFER_NOT_EXPECTED": ErrOfferNotExpected, "UNAVAILABLE": ErrUnavailable, "SHUTTING_DOWN": ErrShuttingDown,
	"CONFLICT": ErrConflict, "NOT_OWNER": errNotOwner, "FENCED": errFenced, "DRAINING": errOwnerDraining,
}

// encodeErr turns an error into a code and a detail for a ForwardReply.
func encodeErr(err error) (code, detail string) {
	if err == nil {
		return "", ""
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return "FIELD", fe.Field + "\x00" + fe.Reason
	}
	for c, e := range errorCodes {
		if errors.Is(err, e) {
			return c, err.Error()
		}
	}
	return "UNAVAILABLE", err.Error()
}

// decodeErr is encodeErr's inverse: errors.Is works on the result.
func decodeErr(code, detail string) error {
	if code == "" {
		return nil
	}
	if code == "FIELD" {
		field, reason, _ := strings.Cut(detail, "\x00")
		return &FieldError{Field: field, Reason: reason}
	}
	e, ok := errorCodes[code]
	if !ok {
		e = ErrUnavailable
	}
	if detail == "" || detail == e.Error() {
		return e
	}
	return fmt.Errorf("%w (%s)", e, detail)
}
