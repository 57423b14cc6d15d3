package kvs

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAPIErrorClassify(t *testing.T) {
	tests := []struct {
		code   string
		status int
		want   error
	}{
		{"ClientLimitExceededException", 400, ErrThrottled},
		{"clientlimitexceededexception", 400, ErrThrottled},
		{"ClientLimitExceededException:http://internal.amazon.com/coral/com.amazonaws.kinesisvideo/", 400, ErrThrottled},
		{"com.amazonaws.kinesisvideo#ClientLimitExceededException", 400, ErrThrottled},
		{"ResourceNotFoundException", 404, ErrNotFound},
		{"AccessDeniedException", 401, ErrAccessDenied},
		{"NotAuthorizedException", 401, ErrAccessDenied},
		{"InvalidArgumentException", 400, ErrInvalidArgument},
		{"InvalidClientException", 400, ErrInvalidArgument},
		{"SessionExpiredException", 400, ErrUnavailable},
		{"ResourceInUseException", 400, ErrUnavailable},
		{"", 404, ErrNotFound},
		{"", 403, ErrAccessDenied},
		{"", 429, ErrThrottled},
		{"", 500, ErrUnavailable},
		{"", 503, ErrUnavailable},
		{"", 400, ErrInvalidArgument},
		{"SomethingNewException", 400, ErrInvalidArgument},
		{"SomethingNewException", 502, ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.code+"/"+http.StatusText(tt.status), func(t *testing.T) {
			err := error(newAPIError("Op", tt.code, "m", tt.status))
			if !errors.Is(err, tt.want) {
				t.Errorf("newAPIError(%q, %d) = %v, want it to wrap %v", tt.code, tt.status, err, tt.want)
			}
			var ae *APIError
			if !errors.As(err, &ae) || strings.ContainsAny(ae.Code, ":#") {
				t.Errorf("newAPIError(%q).Code = %q, want the sanitised code", tt.code, ae.Code)
			}
		})
	}
}

func TestAPIErrorString(t *testing.T) {
	got := newAPIError("GetIceServerConfig", "ClientLimitExceededException", "slow down", 400).Error()
	want := "kvs GetIceServerConfig: ClientLimitExceededException (HTTP 400): slow down"
	if got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond, Max: time.Second, Attempts: 5}
	tests := []struct {
		n       int
		ceiling time.Duration
	}{
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{4, 800 * time.Millisecond},
		{5, time.Second},
		{80, time.Second},
	}
	for _, tt := range tests {
		var maxSeen time.Duration
		for range 2000 {
			d := b.delay(tt.n)
			if d < 0 || d > tt.ceiling {
				t.Fatalf("delay(%d) = %v, want within [0, %v]", tt.n, d, tt.ceiling)
			}
			maxSeen = max(maxSeen, d)
		}
		if maxSeen < tt.ceiling/2 {
			t.Errorf("delay(%d) never above %v in 2000 draws, want full jitter up to %v", tt.n, maxSeen, tt.ceiling)
		}
	}
}

func TestRetryBounded(t *testing.T) {
	b := Backoff{Base: time.Microsecond, Max: time.Microsecond, Attempts: 3}
	tests := []struct {
		name      string
		give      error
		wantCalls int
	}{
		{"throttled retried", ErrThrottled, 3},
		{"not found not retried", ErrNotFound, 1},
		{"success", nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			_, err := retry(t.Context(), b, isThrottled, func() (int, error) { calls++; return 0, tt.give })
			if !errors.Is(err, tt.give) || (tt.give == nil && err != nil) {
				t.Errorf("retry error = %v, want %v", err, tt.give)
			}
			if calls != tt.wantCalls {
				t.Errorf("retry calls = %d, want %d", calls, tt.wantCalls)
			}
		})
	}
}
