package viewerclient

import (
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

var (
	// ErrConfig is wrapped by New's errors: the Config is incomplete.
	ErrConfig = errors.New("viewerclient: invalid config")
	// ErrRunning: Run was called a second time; a Client runs once.
	ErrRunning = errors.New("viewerclient: Run already called")
	// ErrStopped: Run has returned, so what a call waits for cannot happen
	// any more (WaitEvent, WaitRTP), or a message could not be delivered.
	ErrStopped = errors.New("viewerclient: client stopped")
	// ErrSessionFailed is matched (errors.Is) by the *FailedError that Run
	// returns when the session ends FAILED.
	ErrSessionFailed = errors.New("viewerclient: session failed")
)

// errorDomain is the service's google.rpc.ErrorInfo domain.
const errorDomain = "viewersession.acme.dev"

// FailedError is Run's error when the session ends FAILED. It matches
// ErrSessionFailed with errors.Is, and status.Code / status.FromError give
// the status the service ended the app's stream with (Connect mode) or, in
// Signal mode (whose WatchSession ends OK), the same status rebuilt from the
// FAILED event: code by failure reason, with a google.rpc.ErrorInfo whose
// reason is the FailureReason name.
type FailedError struct {
	// Event is the session's FAILED event.
	Event *vspb.SessionEvent
	st    *status.Status
}

func newFailedError(e *vspb.SessionEvent, streamErr error) *FailedError {
	if st, ok := status.FromError(streamErr); ok && streamErr != nil && st.Code() != codes.OK {
		return &FailedError{Event: e, st: st}
	}
	f := e.GetFailure()
	st := status.New(failureCode(f.GetReason()), f.GetMessage())
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Domain: errorDomain, Reason: reasonName(f.GetReason())}); err == nil {
		st = d
	}
	return &FailedError{Event: e, st: st}
}

// Error implements error.
func (e *FailedError) Error() string {
	f := e.Event.GetFailure()
	return fmt.Sprintf("viewerclient: session failed: %s: %s", reasonName(f.GetReason()), f.GetMessage())
}

// Is makes errors.Is(err, ErrSessionFailed) true.
func (e *FailedError) Is(target error) bool { return target == ErrSessionFailed }

// GRPCStatus returns the failure's status (see FailedError).
func (e *FailedError) GRPCStatus() *status.Status { return e.st }

// Reason returns the failure's reason code.
func (e *FailedError) Reason() vspb.FailureReason { return e.Event.GetFailure().GetReason() }

func reasonName(r vspb.FailureReason) string {
	n := r.String()
	const prefix = "FAILURE_REASON_"
	if len(n) > len(prefix) && n[:len(prefix)] == prefix {
		return n[len(prefix):]
	}
	return n
}

// failureCode is the status code the service ends a FAILED session's
// stream with, by failure reason.
func failureCode(r vspb.FailureReason) codes.Code {
	switch r {
	case vspb.FailureReason_FAILURE_REASON_ANSWER_TIMEOUT:
		return codes.DeadlineExceeded
	case vspb.FailureReason_FAILURE_REASON_RECOVERY_FAILED,
		vspb.FailureReason_FAILURE_REASON_KVS_THROTTLED,
		vspb.FailureReason_FAILURE_REASON_KVS_UNAVAILABLE:
		return codes.Unavailable
	case vspb.FailureReason_FAILURE_REASON_CHANNEL_NOT_FOUND:
		return codes.NotFound
	case vspb.FailureReason_FAILURE_REASON_ACCESS_DENIED,
		vspb.FailureReason_FAILURE_REASON_SIGNALING_REJECTED:
		return codes.FailedPrecondition
	case vspb.FailureReason_FAILURE_REASON_CLIENT_ID_EXHAUSTED:
		return codes.ResourceExhausted
	}
	return codes.Internal
}
