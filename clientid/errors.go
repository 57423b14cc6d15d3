package clientid

import "errors"

// ErrInvalid reports a string that is not a valid KVS clientId, or a
// Request that cannot be served (no channel). Errors from Parse and Acquire
// wrap it; the service maps it to INVALID_ARGUMENT.
var ErrInvalid = errors.New("invalid client id")

// ErrExhausted reports that every candidate id for a request is live or
// cooling down; the service maps it to RESOURCE_EXHAUSTED
// (CLIENT_ID_EXHAUSTED).
var ErrExhausted = errors.New("no client id available")

// ErrUnavailable reports that the store (Redis) could not be reached or did
// not answer in time; no id was allocated, renewed or released. The service
// maps it to UNAVAILABLE. The caller's own context errors are returned as
// they are, not as ErrUnavailable.
var ErrUnavailable = errors.New("client id store unavailable")

// ErrNotOwner reports a Renew or Release of a lease that its token no longer
// owns: it was released already, it expired (LeaseTTL passed without a
// Renew), or the id has since been taken by someone else. The id is then in
// cooldown or owned by another lease; a caller that was releasing may treat
// the release as done.
var ErrNotOwner = errors.New("client id lease not owned")
