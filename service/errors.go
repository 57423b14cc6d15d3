package service

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/acme/viewersession/probe"
	"github.com/acme/viewersession/sessionmgr"
)

// Domain is the google.rpc.ErrorInfo domain of every error of the service.
const Domain = "viewersession.acme.dev"

// Authentication's classes: the service's own, as credentials are (API
// keys and session tokens, service/auth.go); sessionmgr knows neither.
var (
	// errUnauthenticated: no valid credentials.
	errUnauthenticated = errors.New("missing or invalid credentials")
	// errPermissionDenied: the credential is valid but does not open this
	// session or RPC.
	errPermissionDenied = errors.New("token does not grant access to this session")
)

// statusRule is how one domain error becomes a status.
type statusRule struct {
	err    error
	code   codes.Code
	reason string
	retry  time.Duration // RetryInfo delay; 0 = none
	// public, when set, is the whole message the caller gets: the error's
	// own words (addresses, URLs, a dependency's text) go to the log.
	public string
}

// statusRules is the error-to-status map, checked in order with errors.Is.
// A table test pins it (errors_test.go).
var statusRules = []statusRule{
	{sessionmgr.ErrInvalidArgument, codes.InvalidArgument, "INVALID_ARGUMENT", 0, ""},
	{sessionmgr.ErrNotFound, codes.NotFound, "SESSION_NOT_FOUND", 0, ""},
	{sessionmgr.ErrChannelNotFound, codes.NotFound, "CHANNEL_NOT_FOUND", 0, ""},
	{sessionmgr.ErrAlreadyExists, codes.AlreadyExists, "SESSION_EXISTS", 0, ""},
	{sessionmgr.ErrChannelFull, codes.ResourceExhausted, "CHANNEL_FULL", 5 * time.Second, ""},
	{sessionmgr.ErrClientIDExhausted, codes.ResourceExhausted, "CLIENT_ID_EXHAUSTED", 10 * time.Second, ""},
	{sessionmgr.ErrSessionClosed, codes.FailedPrecondition, "SESSION_CLOSED", 0, ""},
	{sessionmgr.ErrNotJoined, codes.FailedPrecondition, "NOT_JOINED", 0, ""},
	{sessionmgr.ErrAlreadyJoined, codes.FailedPrecondition, "ALREADY_JOINED", 0, ""},
	{sessionmgr.ErrOfferInFlight, codes.FailedPrecondition, "OFFER_IN_FLIGHT", 0, ""},
	{sessionmgr.ErrOfferNotExpected, codes.FailedPrecondition, "OFFER_NOT_EXPECTED", 0, ""},
	{errUnauthenticated, codes.Unauthenticated, "UNAUTHENTICATED", 0, ""},
	{errPermissionDenied, codes.PermissionDenied, "PERMISSION_DENIED", 0, ""},
	{sessionmgr.ErrCredentials, codes.FailedPrecondition, "AWS_CREDENTIALS", 0,
		"the service cannot load its AWS credentials; an operator must fix its configuration (retrying does not help)"},
	{sessionmgr.ErrInvalidRegion, codes.FailedPrecondition, "INVALID_REGION", 0, ""},
	{sessionmgr.ErrAccessDenied, codes.FailedPrecondition, "ACCESS_DENIED", 0,
		"the service's AWS credentials may not use this channel"},
	{sessionmgr.ErrThrottled, codes.Unavailable, "KVS_THROTTLED", 2 * time.Second,
		"KVS throttled the service; retry shortly"},
	{sessionmgr.ErrShuttingDown, codes.Unavailable, "SHUTTING_DOWN", time.Second,
		"this server is shutting down; retry (another replica will answer)"},
	{sessionmgr.ErrUnavailable, codes.Unavailable, "UNAVAILABLE", time.Second,
		"the service cannot reach a dependency (its session store or KVS) right now; retry"},
	{sessionmgr.ErrConflict, codes.Aborted, "CONFLICT", 0, "the session changed meanwhile; retry"},
	{probe.ErrNoAnswer, codes.DeadlineExceeded, "PROBE_NO_ANSWER", 0, ""},
	{probe.ErrNoMedia, codes.DeadlineExceeded, "PROBE_NO_MEDIA", 0, ""},
	{probe.ErrRejected, codes.FailedPrecondition, "SIGNALING_REJECTED", 0, ""},
}

// failureCodes maps the reason of a FAILED session to the status its app's
// stream ends with.
var failureCodes = map[sessionmgr.FailureReason]codes.Code{
	sessionmgr.FailureAnswerTimeout:     codes.DeadlineExceeded,
	sessionmgr.FailureRecoveryFailed:    codes.Unavailable,
	sessionmgr.FailureChannelNotFound:   codes.NotFound,
	sessionmgr.FailureAccessDenied:      codes.FailedPrecondition,
	sessionmgr.FailureKVSThrottled:      codes.Unavailable,
	sessionmgr.FailureKVSUnavailable:    codes.Unavailable,
	sessionmgr.FailureClientIDExhausted: codes.ResourceExhausted,
	sessionmgr.FailureSignalingRejected: codes.FailedPrecondition,
	sessionmgr.FailureInternal:          codes.Internal,
}

// toStatus turns a domain error into a gRPC status error with ErrorInfo
// and, where they fit, BadRequest, QuotaFailure and RetryInfo. The
// message never carries an address, a URL or a control character: classes
// whose errors quote dependencies get a fixed message and the full error
// is logged (with attrs, such as the session id); other messages are
// scrubbed. Errors it does not know become INTERNAL with a generic
// message, logged in full once, here.
func toStatus(ctx context.Context, log *slog.Logger, err error, attrs ...any) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !isDomain(err) {
		return err // already a status (e.g. from auth)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	for _, r := range statusRules {
		if !errors.Is(err, r.err) {
			continue
		}
		msg := r.public
		if msg == "" {
			msg = scrub(err.Error())
		} else {
			log.WarnContext(ctx, "request failed", append([]any{"reason", r.reason, "error", err}, attrs...)...)
		}
		return r.status(err, msg)
	}
	log.ErrorContext(ctx, "internal error", append([]any{"error", err}, attrs...)...)
	return withDetails(codes.Internal, "internal error", &errdetails.ErrorInfo{Domain: Domain, Reason: "INTERNAL"})
}

// status is the rule's status for err with message msg: ErrorInfo with
// the rule's reason, BadRequest for a field error, QuotaFailure for a full
// channel, RetryInfo when the rule waits.
func (r statusRule) status(err error, msg string) error {
	info := &errdetails.ErrorInfo{Domain: Domain, Reason: r.reason}
	var md metadataError
	if errors.As(err, &md) {
		info.Metadata = md.ErrorMetadata()
	}
	details := []protoadapt.MessageV1{info}
	var fe *sessionmgr.FieldError
	if errors.As(err, &fe) {
		details = append(details, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: fe.Field, Description: fe.Reason},
		}})
	}
	if r.reason == "CHANNEL_FULL" {
		details = append(details, &errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{
			Subject:     "channel",
			Description: "at most the configured number of live sessions (KVS allows 10 viewers) per channel",
		}}})
	}
	if r.retry > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(r.retry)})
	}
	return withDetails(r.code, msg, details...)
}

// metadataError is an error that carries facts for its ErrorInfo's
// metadata (probe.DeadlineError: what the probe measured).
type metadataError interface {
	error
	ErrorMetadata() map[string]string
}

// statusOf is the status of the class of err (one of statusRules'
// errors) with message msg, for the callers that word their own message
// (authentication): the code, reason and RetryInfo are the table's.
func statusOf(class error, msg string) error {
	for _, r := range statusRules {
		if r.err == class {
			return r.status(class, msg)
		}
	}
	return withDetails(codes.Internal, "internal error", &errdetails.ErrorInfo{Domain: Domain, Reason: "INTERNAL"}) // not a class: a bug, pinned by a test
}

// failureStatus is the status an app's stream ends with when its session
// FAILED.
func failureStatus(f *sessionmgr.Failure) error {
	if f == nil {
		return withDetails(codes.Internal, "session failed", &errdetails.ErrorInfo{Domain: Domain, Reason: "INTERNAL"})
	}
	code, ok := failureCodes[f.Reason]
	if !ok {
		code = codes.Internal
	}
	return withDetails(code, scrub(f.Message), &errdetails.ErrorInfo{Domain: Domain, Reason: f.Reason.String()})
}

var (
	urlRE  = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"']*`)
	ipv4RE = regexp.MustCompile(`\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b`)
	ipv6RE = regexp.MustCompile(`\[[0-9a-fA-F:.%]*:[0-9a-fA-F:.%]*\](:\d+)?`)
)

// scrub makes a message fit for a client: URLs and IP addresses become
// "<redacted>", control characters (CR, LF, ...) and invalid UTF-8 are
// escaped, and it is cut at 1024 bytes.
func scrub(msg string) string {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	msg = urlRE.ReplaceAllString(msg, "<redacted>")
	msg = ipv6RE.ReplaceAllString(msg, "<redacted>")
	msg = ipv4RE.ReplaceAllString(msg, "<redacted>")
	var b strings.Builder
	for _, r := range msg {
		if unicode.IsControl(r) {
			b.WriteString(strconv.QuoteRune(r))
			continue
		}
		b.WriteRune(r)
	}
	msg = b.String()
	if len(msg) > 1024 {
		msg = strings.ToValidUTF8(msg[:1024], "") + "..."
	}
	return msg
}

// isDomain reports whether err wraps one of statusRules' errors.
func isDomain(err error) bool {
	for _, r := range statusRules {
		if errors.Is(err, r.err) {
			return true
		}
	}
	return false
}

func withDetails(code codes.Code, msg string, details ...protoadapt.MessageV1) error {
	st := status.New(code, msg)
	if d, err := st.WithDetails(details...); err == nil {
		st = d
	}
	return st.Err()
}

// errorf is a status with an ErrorInfo reason (and BadRequest for
// INVALID_ARGUMENT with a field).
func invalidField(field, desc string) error {
	return withDetails(codes.InvalidArgument, field+": "+desc,
		&errdetails.ErrorInfo{Domain: Domain, Reason: "INVALID_ARGUMENT"},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: desc}}})
}
