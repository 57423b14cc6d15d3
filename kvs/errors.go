package kvs

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// ErrNotFound means the channel (or another KVS resource) does not exist:
// ResourceNotFoundException or HTTP 404.
var ErrNotFound = errors.New("kvs: not found")

// ErrAccessDenied means the credentials may not do this:
// AccessDeniedException, NotAuthorizedException, HTTP 401 or 403.
var ErrAccessDenied = errors.New("kvs: access denied")

// ErrInvalidArgument means KVS rejected the request itself
// (InvalidArgumentException, InvalidClientException, another 4xx), or the
// caller passed something this package refuses to send (a malformed clientId,
// SDP or candidate, an oversized payload).
var ErrInvalidArgument = errors.New("kvs: invalid argument")

// ErrCredentials means no AWS credentials could be loaded (none in the
// chain, an expired profile, an unreachable metadata service): a
// configuration problem that retrying does not fix.
var ErrCredentials = errors.New("kvs: AWS credentials cannot be loaded")

// ErrInvalidRegion means a region is not an AWS region name.
var ErrInvalidRegion = errors.New("kvs: invalid region")

// ErrThrottled means KVS refused the call for rate or count limits
// (ClientLimitExceededException) and the retries with backoff ran out.
var ErrThrottled = errors.New("kvs: throttled")

// ErrUnavailable means KVS could not be reached or failed on its side: a
// network error, an HTTP 5xx, a transient state such as ResourceInUse or
// SessionExpired, or a signaling connection that could not be re-established.
var ErrUnavailable = errors.New("kvs: unavailable")

// ErrClosed means the signaling connection is closed.
var ErrClosed = errors.New("kvs: connection closed")

// APIError is an error answer from KVS. It wraps the sentinel that classifies
// it, so errors.Is(err, ErrThrottled) and friends work on it.
type APIError struct {
	// Op is the KVS operation: DescribeSignalingChannel,
	// GetSignalingChannelEndpoint, GetIceServerConfig or ConnectAsViewer.
	Op string
	// Code is the KVS error code, such as ClientLimitExceededException.
	// It may be empty when the answer carried none.
	Code string
	// Message is KVS's message, possibly empty.
	Message string
	// HTTPStatus is the answer's HTTP status code.
	HTTPStatus int

	kind error // one of the sentinels above
}

// Error implements error.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kvs %s: ", e.Op)
	if e.Code != "" {
		b.WriteString(e.Code)
	} else {
		b.WriteString(http.StatusText(e.HTTPStatus))
	}
	fmt.Fprintf(&b, " (HTTP %d)", e.HTTPStatus)
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Unwrap returns the sentinel that classifies e.
func (e *APIError) Unwrap() error { return e.kind }

// newAPIError classifies a KVS error answer by its code, then by its status.
func newAPIError(op, code, message string, status int) *APIError {
	code = sanitizeCode(code)
	return &APIError{Op: op, Code: code, Message: message, HTTPStatus: status, kind: classify(code, status)}
}

// sanitizeCode strips what the AWS JSON protocols allow around an error code:
// a namespace before '#' and anything after ':'.
func sanitizeCode(code string) string {
	code = strings.TrimSpace(code)
	if i := strings.IndexByte(code, ':'); i >= 0 {
		code = code[:i]
	}
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	return code
}

// classify maps a KVS error code (matched case-insensitively) or, without a
// known code, an HTTP status to a sentinel.
func classify(code string, status int) error {
	switch strings.ToLower(code) {
	case "clientlimitexceededexception", "throttlingexception", "throttling", "toomanyrequestsexception", "limitexceededexception":
		return ErrThrottled
	case "resourcenotfoundexception":
		return ErrNotFound
	case "accessdeniedexception", "notauthorizedexception", "unrecognizedclientexception",
		"invalidsignatureexception", "signaturedoesnotmatch", "expiredtokenexception":
		return ErrAccessDenied
	case "invalidargumentexception", "invalidclientexception", "validationexception":
		return ErrInvalidArgument
	case "resourceinuseexception", "sessionexpiredexception":
		return ErrUnavailable
	}
	switch {
	case status == http.StatusTooManyRequests:
		return ErrThrottled
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return ErrAccessDenied
	case status >= 500 || status == http.StatusRequestTimeout:
		return ErrUnavailable
	case status >= 400:
		return ErrInvalidArgument
	}
	return ErrUnavailable
}

// unavailable wraps a transport-level failure of op.
func unavailable(op string, err error) error {
	return fmt.Errorf("kvs %s: %w: %w", op, ErrUnavailable, err)
}
