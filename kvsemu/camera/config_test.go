package camera

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestParseMode(t *testing.T) {
	tests := []struct {
		give    string
		want    Mode
		wantErr error
	}{
		{give: "c-sample", want: CSample},
		{give: "js-sample", want: JSSample},
		{give: "restart-capable", want: RestartCapable},
		{give: "", wantErr: ErrInvalidMode},
		{give: "C-SAMPLE", wantErr: ErrInvalidMode},
		{give: "browser", wantErr: ErrInvalidMode},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			got, err := ParseMode(tt.give)
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("ParseMode(%q) = %q, %v, want %q, %v", tt.give, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func dialNothing(context.Context) (*websocket.Conn, error) { return nil, errors.New("unused") }

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		give Config
		want []error
	}{
		{name: "ok", give: Config{Dial: dialNothing}},
		{name: "no dial", give: Config{}, want: []error{ErrInvalidConfig}},
		{name: "bad mode", give: Config{Dial: dialNothing, Mode: "x"}, want: []error{ErrInvalidMode}},
		{name: "negative", give: Config{Dial: dialNothing, CleanupPeriod: -time.Second}, want: []error{ErrInvalidConfig}},
		{name: "every problem", give: Config{Mode: "x", MaxSessions: -1}, want: []error{ErrInvalidMode, ErrInvalidConfig}},
		{name: "IPv6 loopback host", give: Config{Dial: dialNothing, HostIP: netip.IPv6Loopback()}, want: []error{ErrInvalidConfig}},
		{name: "unspecified host", give: Config{Dial: dialNothing, HostIP: netip.IPv4Unspecified()}, want: []error{ErrInvalidConfig}},
		// 198.51.100.0/24 is TEST-NET-2: on no interface here.
		{name: "foreign host", give: Config{Dial: dialNothing, HostIP: netip.MustParseAddr("198.51.100.7")}, want: []error{ErrInvalidConfig}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.give)
			if len(tt.want) == 0 {
				if err != nil || c == nil {
					t.Fatalf("New(%+v) = %v, %v, want a camera", tt.give, c, err)
				}
				return
			}
			for _, want := range tt.want {
				if !errors.Is(err, want) {
					t.Errorf("New(%+v) error = %v, want %v", tt.give, err, want)
				}
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	got, err := Config{Dial: dialNothing}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if got.Mode != CSample || got.CleanupPeriod != 5*time.Second || got.MaxSessions != 10 ||
		got.PendingCandidateTTL != 20*time.Second || got.ReconnectDelay != 100*time.Millisecond ||
		got.MaxReconnectDelay != 2*time.Second || got.Logger == nil ||
		got.HostIP != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("withDefaults() = %+v, want c-sample, 5s, 10, 20s, 100ms, 2s, a logger, 127.0.0.1", got)
	}
}
