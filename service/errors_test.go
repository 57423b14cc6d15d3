package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/acme/viewersession/probe"
	"github.com/acme/viewersession/sessionmgr"
)

func TestToStatus(t *testing.T) {
	tests := []struct {
		give       error
		wantCode   codes.Code
		wantReason string
		wantField  string // BadRequest field violation
		wantQuota  bool
		wantRetry  bool
	}{
		{fmt.Errorf("wrapped: %w", sessionmgr.ErrNotFound), codes.NotFound, "SESSION_NOT_FOUND", "", false, false},
		{&sessionmgr.FieldError{Field: "viewer_id", Reason: "required"}, codes.InvalidArgument, "INVALID_ARGUMENT", "viewer_id", false, false},
		{sessionmgr.ErrChannelFull, codes.ResourceExhausted, "CHANNEL_FULL", "", true, true},
		{sessionmgr.ErrClientIDExhausted, codes.ResourceExhausted, "CLIENT_ID_EXHAUSTED", "", false, true},
		{sessionmgr.ErrChannelNotFound, codes.NotFound, "CHANNEL_NOT_FOUND", "", false, false},
		{sessionmgr.ErrSessionClosed, codes.FailedPrecondition, "SESSION_CLOSED", "", false, false},
		{sessionmgr.ErrNotJoined, codes.FailedPrecondition, "NOT_JOINED", "", false, false},
		{sessionmgr.ErrAlreadyJoined, codes.FailedPrecondition, "ALREADY_JOINED", "", false, false},
		{sessionmgr.ErrOfferInFlight, codes.FailedPrecondition, "OFFER_IN_FLIGHT", "", false, false},
		{sessionmgr.ErrOfferNotExpected, codes.FailedPrecondition, "OFFER_NOT_EXPECTED", "", false, false},
		{errPermissionDenied, codes.PermissionDenied, "PERMISSION_DENIED", "", false, false},
		{errUnauthenticated, codes.Unauthenticated, "UNAUTHENTICATED", "", false, false},
		{sessionmgr.ErrAccessDenied, codes.FailedPrecondition, "ACCESS_DENIED", "", false, false},
		{fmt.Errorf("resolve: %w", sessionmgr.ErrThrottled), codes.Unavailable, "KVS_THROTTLED", "", false, true},
		{sessionmgr.ErrUnavailable, codes.Unavailable, "UNAVAILABLE", "", false, true},
		{sessionmgr.ErrShuttingDown, codes.Unavailable, "SHUTTING_DOWN", "", false, true},
		{sessionmgr.ErrAlreadyExists, codes.AlreadyExists, "SESSION_EXISTS", "", false, false},
		{sessionmgr.ErrConflict, codes.Aborted, "CONFLICT", "", false, false},
		{errors.New("disk on fire"), codes.Internal, "INTERNAL", "", false, false},
		// Issue 15, defect 7: configuration problems are not transient.
		{fmt.Errorf("resolve channel: %w: no EC2 IMDS role found", sessionmgr.ErrCredentials), codes.FailedPrecondition, "AWS_CREDENTIALS", "", false, false},
		{fmt.Errorf("%w: channel.region \"us\\r\\n\" is not a region", sessionmgr.ErrInvalidRegion), codes.FailedPrecondition, "INVALID_REGION", "", false, false},
		// ProbeChannel.
		{&probe.DeadlineError{Err: probe.ErrNoAnswer, Deadline: time.Second}, codes.DeadlineExceeded, "PROBE_NO_ANSWER", "", false, false},
		{&probe.DeadlineError{Err: probe.ErrNoMedia, Deadline: time.Second}, codes.DeadlineExceeded, "PROBE_NO_MEDIA", "", false, false},
		{fmt.Errorf("%w: bad offer", probe.ErrRejected), codes.FailedPrecondition, "SIGNALING_REJECTED", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.give.Error(), func(t *testing.T) {
			var logs bytes.Buffer
			err := toStatus(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)), tt.give)
			st := status.Convert(err)
			if st.Code() != tt.wantCode {
				t.Errorf("toStatus(%v) code = %v, want %v", tt.give, st.Code(), tt.wantCode)
			}
			var info *errdetails.ErrorInfo
			var field string
			var quota, retry bool
			for _, d := range st.Details() {
				switch d := d.(type) {
				case *errdetails.ErrorInfo:
					info = d
				case *errdetails.BadRequest:
					field = d.GetFieldViolations()[0].GetField()
				case *errdetails.QuotaFailure:
					quota = true
				case *errdetails.RetryInfo:
					retry = true
				}
			}
			if info == nil || info.GetReason() != tt.wantReason || info.GetDomain() != Domain {
				t.Errorf("toStatus(%v) ErrorInfo = %v, want reason %s in %s", tt.give, info, tt.wantReason, Domain)
			}
			if field != tt.wantField || quota != tt.wantQuota || retry != tt.wantRetry {
				t.Errorf("toStatus(%v) details: field %q quota %v retry %v; want %q %v %v", tt.give, field, quota, retry, tt.wantField, tt.wantQuota, tt.wantRetry)
			}
			if tt.wantCode == codes.Internal {
				if st.Message() != "internal error" {
					t.Errorf("internal error message = %q, want a generic one", st.Message())
				}
				if !bytes.Contains(logs.Bytes(), []byte("disk on fire")) {
					t.Errorf("internal error not logged: %q", logs.String())
				}
			}
		})
	}
}

func TestToStatusContextErrors(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if got := status.Code(toStatus(context.Background(), log, context.Canceled)); got != codes.Canceled {
		t.Errorf("toStatus(Canceled) = %v, want Canceled", got)
	}
	if got := status.Code(toStatus(context.Background(), log, fmt.Errorf("x: %w", context.DeadlineExceeded))); got != codes.DeadlineExceeded {
		t.Errorf("toStatus(DeadlineExceeded) = %v, want DeadlineExceeded", got)
	}
	if toStatus(context.Background(), log, nil) != nil {
		t.Error("toStatus(nil) != nil")
	}
}

func TestFailureStatus(t *testing.T) {
	tests := []struct {
		give sessionmgr.FailureReason
		want codes.Code
	}{
		{sessionmgr.FailureAnswerTimeout, codes.DeadlineExceeded},
		{sessionmgr.FailureRecoveryFailed, codes.Unavailable},
		{sessionmgr.FailureChannelNotFound, codes.NotFound},
		{sessionmgr.FailureClientIDExhausted, codes.ResourceExhausted},
		{sessionmgr.FailureInternal, codes.Internal},
	}
	for _, tt := range tests {
		st := status.Convert(failureStatus(&sessionmgr.Failure{Reason: tt.give, Message: "because"}))
		if st.Code() != tt.want || st.Message() != "because" {
			t.Errorf("failureStatus(%v) = %v %q, want %v \"because\"", tt.give, st.Code(), st.Message(), tt.want)
		}
		info, _ := st.Details()[0].(*errdetails.ErrorInfo)
		if info.GetReason() != tt.give.String() {
			t.Errorf("failureStatus(%v) reason = %q, want %q", tt.give, info.GetReason(), tt.give.String())
		}
	}
}

// Issue 15, defect 9: what an app or backend is told never carries an
// internal URL or address, nor raw control characters; the full error is
// logged with the session id.
func TestToStatusHidesInternals(t *testing.T) {
	tests := []error{
		fmt.Errorf("resolve channel: %w: kvs DescribeSignalingChannel: Post \"https://127.0.0.1:44567/describeSignalingChannel\": dial tcp 127.0.0.1:44567: connect: connection refused", sessionmgr.ErrUnavailable),
		fmt.Errorf("%w: redis: dial tcp [fd00::5]:6379: i/o timeout", sessionmgr.ErrUnavailable),
		fmt.Errorf("%w: wss://v-1234.kinesisvideo.us-west-2.amazonaws.com refused", sessionmgr.ErrThrottled),
		fmt.Errorf("%w: channel.region \"x\r\nInjected: yes http://10.0.0.1/\"", sessionmgr.ErrInvalidRegion),
		&sessionmgr.FieldError{Field: "offer.sdp", Reason: "bad line \"a=x\r\nb\" from 192.168.1.20:5000"},
	}
	for _, give := range tests {
		var logs bytes.Buffer
		err := toStatus(context.Background(), slog.New(slog.NewJSONHandler(&logs, nil)), give, "session_id", "s1")
		msg := status.Convert(err).Message()
		for _, bad := range []string{"127.0.0.1", "fd00::5", "10.0.0.1", "192.168.1.20", "https://", "http://", "wss://", "\r", "\n"} {
			if strings.Contains(msg, bad) {
				t.Errorf("toStatus(%q) message %q contains %q", give, msg, bad)
			}
		}
		if status.Code(err) == codes.Unavailable && !strings.Contains(logs.String(), `"session_id":"s1"`) {
			t.Errorf("toStatus(%q): the detail is not logged with the session id; log: %s", give, logs.String())
		}
	}
}

// The statuses authentication words itself take their code, reason and
// RetryInfo from statusRules, like every other error: one table.
func TestStatusOfTakesTheTable(t *testing.T) {
	for _, r := range statusRules {
		st := status.Convert(statusOf(r.err, "worded by the caller"))
		if st.Code() != r.code || st.Message() != "worded by the caller" {
			t.Errorf("statusOf(%v) = %v %q, want %v with the caller's message", r.err, st.Code(), st.Message(), r.code)
		}
		var reason string
		var retry bool
		for _, d := range st.Details() {
			switch d := d.(type) {
			case *errdetails.ErrorInfo:
				reason = d.GetReason()
			case *errdetails.RetryInfo:
				retry = d.GetRetryDelay().AsDuration() == r.retry
			}
		}
		if reason != r.reason || retry != (r.retry > 0) {
			t.Errorf("statusOf(%v): reason %q, RetryInfo as the table's %v; want %q, %v", r.err, reason, retry, r.reason, r.retry > 0)
		}
	}
	if st := status.Convert(statusOf(errors.New("not a class"), "x")); st.Code() != codes.Internal {
		t.Errorf("statusOf(an unknown class) = %v, want INTERNAL", st.Code())
	}
}
