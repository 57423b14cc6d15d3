package viewerclient

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/acme/viewersession/internal/switchnet"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

func TestNewValidatesConfig(t *testing.T) {
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ok := Config{Conn: conn, Session: "sessions/abc", Token: "t"}
	tests := []struct {
		name    string
		give    func(*Config)
		wantErr error
	}{
		{name: "ok", give: func(*Config) {}},
		{name: "signal mode", give: func(c *Config) { c.Mode = ModeSignal }},
		{name: "dial", give: func(c *Config) {
			c.Conn, c.Dial = nil, func(context.Context) (*grpc.ClientConn, error) { return nil, nil }
		}},
		{name: "host network", give: func(c *Config) { c.Net = nil }},
		{name: "custom network", give: func(c *Config) { c.Net = loopback(t) }},
		{name: "no conn", give: func(c *Config) { c.Conn = nil }, wantErr: ErrConfig},
		{name: "conn and dial", give: func(c *Config) { c.Dial = func(context.Context) (*grpc.ClientConn, error) { return nil, nil } }, wantErr: ErrConfig},
		{name: "negative ack timeout", give: func(c *Config) { c.AckTimeout = -time.Second }, wantErr: ErrConfig},
		{name: "bad session", give: func(c *Config) { c.Session = "abc" }, wantErr: ErrConfig},
		{name: "empty session id", give: func(c *Config) { c.Session = "sessions/" }, wantErr: ErrConfig},
		{name: "no token", give: func(c *Config) { c.Token = "" }, wantErr: ErrConfig},
		{name: "bad mode", give: func(c *Config) { c.Mode = 7 }, wantErr: ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.give(&cfg)
			_, err := New(cfg)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("New() error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestRecordDropsDuplicatesAndCountsGaps(t *testing.T) {
	tests := []struct {
		name     string
		give     []uint64
		wantSeqs []uint64
		wantGaps int
		wantDups int
	}{
		{name: "contiguous", give: []uint64{1, 2, 3}, wantSeqs: []uint64{1, 2, 3}},
		{name: "replay overlap", give: []uint64{1, 2, 3, 2, 3, 4}, wantSeqs: []uint64{1, 2, 3, 4}, wantDups: 2},
		{name: "gap", give: []uint64{1, 2, 5, 6}, wantSeqs: []uint64{1, 2, 5, 6}, wantGaps: 1},
		{name: "missing start", give: []uint64{3, 4}, wantSeqs: []uint64{3, 4}, wantGaps: 1},
		{name: "old event after a gap", give: []uint64{1, 3, 2}, wantSeqs: []uint64{1, 3}, wantGaps: 1, wantDups: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, ModeConnect)
			for _, seq := range tt.give {
				c.record(&vspb.SessionEvent{Sequence: seq})
			}
			var got []uint64
			for _, e := range c.Events() {
				got = append(got, e.GetSequence())
			}
			if !slices.Equal(got, tt.wantSeqs) {
				t.Errorf("Events() sequences = %v, want %v", got, tt.wantSeqs)
			}
			s := c.Stats()
			if s.SequenceGaps != tt.wantGaps || s.DuplicateEvents != tt.wantDups {
				t.Errorf("gaps, duplicates = %d, %d; want %d, %d", s.SequenceGaps, s.DuplicateEvents, tt.wantGaps, tt.wantDups)
			}
			if want := tt.wantSeqs[len(tt.wantSeqs)-1]; s.LastSequence != want {
				t.Errorf("LastSequence = %d, want %d", s.LastSequence, want)
			}
		})
	}
}

func TestWaitEventSeesPastAndFutureEvents(t *testing.T) {
	c := newTestClient(t, ModeConnect)
	c.record(&vspb.SessionEvent{Sequence: 1, Type: vspb.EventType_EVENT_TYPE_CREATED})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	e, err := c.WaitEvent(ctx, func(e *vspb.SessionEvent) bool { return e.GetType() == vspb.EventType_EVENT_TYPE_CREATED })
	if err != nil || e.GetSequence() != 1 {
		t.Fatalf("WaitEvent(CREATED) = %v, %v; want sequence 1", e, err)
	}
	got := make(chan *vspb.SessionEvent, 1)
	go func() {
		e, _ := c.WaitEvent(ctx, func(e *vspb.SessionEvent) bool { return e.GetType() == vspb.EventType_EVENT_TYPE_CLOSED })
		got <- e
	}()
	c.record(&vspb.SessionEvent{Sequence: 2, Type: vspb.EventType_EVENT_TYPE_APP_ATTACHED})
	c.record(&vspb.SessionEvent{Sequence: 3, Type: vspb.EventType_EVENT_TYPE_CLOSED})
	if e := <-got; e.GetSequence() != 3 {
		t.Errorf("WaitEvent(CLOSED) = %v, want sequence 3", e)
	}
}

func TestWaitFailsOnceRunHasEnded(t *testing.T) {
	c := newTestClient(t, ModeConnect)
	c.mu.Lock()
	c.ended = true
	c.wakeLocked()
	c.mu.Unlock()
	if _, err := c.WaitEvent(t.Context(), func(*vspb.SessionEvent) bool { return true }); !errors.Is(err, ErrStopped) {
		t.Errorf("WaitEvent after the run = %v, want ErrStopped", err)
	}
	if err := c.WaitRTP(t.Context(), 1); !errors.Is(err, ErrStopped) {
		t.Errorf("WaitRTP after the run = %v, want ErrStopped", err)
	}
}

func TestFailedError(t *testing.T) {
	fail := func(r vspb.FailureReason) *vspb.SessionEvent {
		return &vspb.SessionEvent{Type: vspb.EventType_EVENT_TYPE_FAILED, Failure: &vspb.Failure{Reason: r, Message: "why"}}
	}
	tests := []struct {
		name       string
		give       *vspb.SessionEvent
		streamErr  error
		wantCode   codes.Code
		wantReason string
	}{
		{name: "answer timeout rebuilt", give: fail(vspb.FailureReason_FAILURE_REASON_ANSWER_TIMEOUT), wantCode: codes.DeadlineExceeded, wantReason: "ANSWER_TIMEOUT"},
		{name: "recovery failed rebuilt", give: fail(vspb.FailureReason_FAILURE_REASON_RECOVERY_FAILED), wantCode: codes.Unavailable, wantReason: "RECOVERY_FAILED"},
		{name: "client ids rebuilt", give: fail(vspb.FailureReason_FAILURE_REASON_CLIENT_ID_EXHAUSTED), wantCode: codes.ResourceExhausted, wantReason: "CLIENT_ID_EXHAUSTED"},
		{name: "unknown rebuilt", give: fail(vspb.FailureReason_FAILURE_REASON_UNSPECIFIED), wantCode: codes.Internal, wantReason: "UNSPECIFIED"},
		{
			name: "stream status kept", give: fail(vspb.FailureReason_FAILURE_REASON_ANSWER_TIMEOUT),
			streamErr: status.Error(codes.Aborted, "from the stream"), wantCode: codes.Aborted,
		},
		{name: "OK stream status ignored", give: fail(vspb.FailureReason_FAILURE_REASON_KVS_THROTTLED), streamErr: nil, wantCode: codes.Unavailable, wantReason: "KVS_THROTTLED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error = newFailedError(tt.give, tt.streamErr)
			if !errors.Is(err, ErrSessionFailed) {
				t.Errorf("errors.Is(%v, ErrSessionFailed) = false, want true", err)
			}
			if got := status.Code(err); got != tt.wantCode {
				t.Errorf("status.Code = %v, want %v", got, tt.wantCode)
			}
			if tt.wantReason != "" {
				if got := errorReason(err); got != tt.wantReason {
					t.Errorf("ErrorInfo reason = %q, want %q", got, tt.wantReason)
				}
			}
			var fe *FailedError
			if !errors.As(err, &fe) || fe.Reason() != tt.give.GetFailure().GetReason() {
				t.Errorf("errors.As(*FailedError).Reason() mismatch for %v", err)
			}
		})
	}
}

func TestFPSMeter(t *testing.T) {
	t0 := time.Unix(100, 0)
	tests := []struct {
		name   string
		frames int
		step   uint32 // RTP ticks per frame at 90 kHz
		start  uint32
		at     time.Duration // when the rate is read, after the last frame
		want   float64
	}{
		{name: "15 fps", frames: 20, step: 6000, want: 15},
		{name: "30 fps across the wrap", frames: 20, step: 3000, start: math.MaxUint32 - 10000, want: 30},
		{name: "one frame", frames: 1, step: 3000, want: 0},
		{name: "stalled", frames: 20, step: 3000, at: 2 * time.Second, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m fpsMeter
			ts := tt.start
			now := t0
			for range tt.frames {
				m.frame(1, ts, 90000, now)
				m.frame(1, ts, 90000, now) // a repeated marker is one frame
				ts += tt.step
				now = now.Add(10 * time.Millisecond)
			}
			if got := m.rate(now.Add(tt.at)); math.Abs(got-tt.want) > 0.01 {
				t.Errorf("rate = %.2f, want %.2f", got, tt.want)
			}
		})
	}
}

func TestQueue(t *testing.T) {
	q := newQueue[int]()
	for i := range 3 {
		q.push(i)
	}
	select {
	case <-q.ready:
	default:
		t.Fatal("ready has no token after a push")
	}
	if got := q.drain(); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("drain() = %v, want [0 1 2]", got)
	}
	q.push(3)
	if left := q.close(); !slices.Equal(left, []int{3}) {
		t.Errorf("close() = %v, want [3]", left)
	}
	if q.push(5) {
		t.Error("push after close = true, want false")
	}
}

func newTestClient(t *testing.T, mode Mode) *Client {
	t.Helper()
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c, err := New(Config{Conn: conn, Session: "sessions/test", Token: "secret", Mode: mode, Net: loopback(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// loopback is the network most tests run on: a SwitchNet fixed on
// 127.0.0.1, so that the client gathers on loopback only and leaves the
// machine's network unwatched.
func loopback(t *testing.T) *switchnet.SwitchNet { return newSwitchNet(t, "127.0.0.1") }

func newSwitchNet(t *testing.T, ip string) *switchnet.SwitchNet {
	t.Helper()
	n, err := switchnet.New(ip)
	if err != nil {
		t.Fatalf("switchnet.New(%q): %v", ip, err)
	}
	return n
}
