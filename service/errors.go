package service

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/acme/viewersession/sessionmgr"
)

// Domain is the google.rpc.ErrorInfo domain of every error of the service.
const Domain = "viewersession.acme.dev"

// statusRule is how one domain error becomes a status.
type statusRule struct {
	err    error
	code   codes.Code
	reason string
	retry  time.Duration // RetryInfo delay; 0 = none
}

// statusRules is the error-to-status map, checked in order with errors.Is.
// A table test pins it (errors_test.go).
var statusRules = []statusRule{
	{sessionmgr.ErrInvalidArgument, codes.InvalidArgument, "INVALID_ARGUMENT", 0},
	{sessionmgr.ErrNotFound, codes.NotFound, "SESSION_NOT_FOUND", 0},
	{sessionmgr.ErrChannelNotFound, codes.NotFound, "CHANNEL_NOT_FOUND", 0},
	{sessionmgr.ErrAlreadyExists, codes.AlreadyExists, "SESSION_EXISTS", 0},
	{sessionmgr.ErrChannelFull, codes.ResourceExhausted, "CHANNEL_FULL", 5 * time.Second},
	{sessionmgr.ErrClientIDExhausted, codes.ResourceExhausted, "CLIENT_ID_EXHAUSTED", 10 * time.Second},
	{sessionmgr.ErrSessionClosed, codes.FailedPrecondition, "SESSION_CLOSED", 0},
	{sessionmgr.ErrNotJoined, codes.FailedPrecondition, "NOT_JOINED", 0},
	{sessionmgr.ErrAlreadyJoined, codes.FailedPrecondition, "ALREADY_JOINED", 0},
	{sessionmgr.ErrOfferInFlight, codes.FailedPrecondition, "OFFER_IN_FLIGHT", 0},
	{sessionmgr.ErrOfferNotExpected, codes.FailedPrecondition, "OFFER_NOT_EXPECTED", 0},
	{sessionmgr.ErrUnauthenticated, codes.Unauthenticated, "UNAUTHENTICATED", 0},
	{sessionmgr.ErrPermissionDenied, codes.PermissionDenied, "PERMISSION_DENIED", 0},
	{sessionmgr.ErrAccessDenied, codes.FailedPrecondition, "ACCESS_DENIED", 0},
	{sessionmgr.ErrThrottled, codes.Unavailable, "KVS_THROTTLED", 2 * time.Second},
	{sessionmgr.ErrShuttingDown, codes.Unavailable, "SHUTTING_DOWN", time.Second},
	{sessionmgr.ErrUnavailable, codes.Unavailable, "UNAVAILABLE", time.Second},
	{sessionmgr.ErrConflict, codes.Aborted, "CONFLICT", 0},
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
// and, where they fit, BadRequest, QuotaFailure and RetryInfo. Errors it
// does not know become INTERNAL with a generic message; the full error is
// logged once, here.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
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
		var details []protoadapt.MessageV1
		details = append(details, &errdetails.ErrorInfo{Domain: Domain, Reason: r.reason})
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
		return withDetails(codes.Code(r.code), err.Error(), details...)
	}
	log.ErrorContext(ctx, "internal error", "error", err)
	return withDetails(codes.Internal, "internal error", &errdetails.ErrorInfo{Domain: Domain, Reason: "INTERNAL"})
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
	return withDetails(code, f.Message, &errdetails.ErrorInfo{Domain: Domain, Reason: f.Reason.String()})
}

// isDomain reports whether err wraps one of the sessionmgr sentinels.
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
