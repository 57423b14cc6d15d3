package probe

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"
)

func TestDeadlineError(t *testing.T) {
	answered := Result{ClientID: "vss-probe-3", Answered: true, Answer: 120 * time.Millisecond,
		Path: Path{Local: Relay, Remote: Srflx, Protocol: "udp", RelayProtocol: "tls"}}
	tests := []struct {
		name     string
		give     *DeadlineError
		wantIs   error
		wantText []string
		wantMD   map[string]string
	}{
		{
			name:     "no answer",
			give:     &DeadlineError{Err: ErrNoAnswer, Deadline: 2 * time.Second, Result: Result{ClientID: "vss-probe"}},
			wantIs:   ErrNoAnswer,
			wantText: []string{"did not answer", "vss-probe", "2s"},
			wantMD:   map[string]string{"client_id": "vss-probe", "deadline_ms": "2000"},
		},
		{
			name:     "no video",
			give:     &DeadlineError{Err: ErrNoMedia, Deadline: 10 * time.Second, Result: answered},
			wantIs:   ErrNoMedia,
			wantText: []string{"answered", "120ms", "no video packet", "10s", "relay(tls)/udp -> srflx"},
			wantMD: map[string]string{"client_id": "vss-probe-3", "deadline_ms": "10000", "answer_latency_ms": "120",
				"ice_path": "relay(tls)/udp -> srflx"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.give, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false, want true", tt.give, tt.wantIs)
			}
			for _, w := range tt.wantText {
				if !strings.Contains(tt.give.Error(), w) {
					t.Errorf("Error() = %q, want it to contain %q", tt.give.Error(), w)
				}
			}
			if got := tt.give.ErrorMetadata(); !maps.Equal(got, tt.wantMD) {
				t.Errorf("ErrorMetadata() = %v, want %v", got, tt.wantMD)
			}
		})
	}
}
