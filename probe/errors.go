package probe

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Errors callers branch on with errors.Is; the service maps each to a
// status (service/errors.go).
var (
	// ErrNoAnswer: the camera did not answer the probe's offer by the
	// deadline.
	ErrNoAnswer = errors.New("no answer")
	// ErrNoMedia: the camera answered, but no video packet arrived by the
	// deadline.
	ErrNoMedia = errors.New("no video")
	// ErrRejected: KVS refused the probe's offer or candidates
	// (STATUS_RESPONSE).
	ErrRejected = errors.New("signaling rejected")
)

// DeadlineError is a probe that ran out of time. It wraps ErrNoAnswer or
// ErrNoMedia; Result holds what was measured until then.
type DeadlineError struct {
	Err      error // ErrNoAnswer or ErrNoMedia
	Deadline time.Duration
	Result   Result
}

func (e *DeadlineError) Error() string {
	r := e.Result
	if errors.Is(e.Err, ErrNoAnswer) {
		return fmt.Sprintf("no answer: the camera did not answer the probe's offer (clientId %s) within the deadline, %v", r.ClientID, e.Deadline)
	}
	msg := fmt.Sprintf("no video: the camera answered the probe's offer (clientId %s) in %v, but no video packet arrived within the deadline, %v",
		r.ClientID, r.Answer.Round(time.Millisecond), e.Deadline)
	if r.Path.Local != "" {
		msg += " (ICE connected over " + r.Path.String() + ")"
	}
	return msg
}

// Unwrap makes errors.Is(err, ErrNoAnswer) or ErrNoMedia true.
func (e *DeadlineError) Unwrap() error { return e.Err }

// ErrorMetadata is what was measured, for the status's ErrorInfo:
// client_id, deadline_ms and, once answered, answer_latency_ms and the
// ICE path when one was selected.
func (e *DeadlineError) ErrorMetadata() map[string]string {
	r := e.Result
	md := map[string]string{
		"client_id":   r.ClientID,
		"deadline_ms": strconv.FormatInt(e.Deadline.Milliseconds(), 10),
	}
	if r.Answered {
		md["answer_latency_ms"] = strconv.FormatInt(r.Answer.Milliseconds(), 10)
	}
	if r.Path.Local != "" {
		md["ice_path"] = r.Path.String()
	}
	return md
}
