package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/acme/viewersession/sessionmgr"
)

func TestObserver(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.SessionState(sessionmgr.StateUnknown, sessionmgr.StatePending)
	m.SessionState(sessionmgr.StatePending, sessionmgr.StateSignaling)
	m.SessionState(sessionmgr.StateUnknown, sessionmgr.StatePending)
	m.SessionState(sessionmgr.StatePending, sessionmgr.StateClosed)
	m.AnswerTimeout(true)
	m.AnswerTimeout(false)
	m.Recovery("ice_restart", true, 50*time.Millisecond)
	m.Recovery("full_reconnect", false, time.Second)
	m.ClientID(time.Millisecond, true, nil)
	m.ClientID(time.Millisecond, false, errors.New("down"))
	m.KVSCall("GetIceServerConfig", "ok")

	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"live SIGNALING", testutil.ToFloat64(m.sessions.WithLabelValues("SIGNALING")), 1},
		{"live PENDING", testutil.ToFloat64(m.sessions.WithLabelValues("PENDING")), 0},
		{"ended CLOSED", testutil.ToFloat64(m.ended.WithLabelValues("CLOSED")), 1},
		{"retries", testutil.ToFloat64(m.retries), 1},
		{"final timeouts", testutil.ToFloat64(m.answerTimeouts.WithLabelValues("true")), 1},
		{"recovered", testutil.ToFloat64(m.recoveries.WithLabelValues("ice_restart", "recovered")), 1},
		{"recovery failed", testutil.ToFloat64(m.recoveries.WithLabelValues("full_reconnect", "failed")), 1},
		{"collisions", testutil.ToFloat64(m.idCollisions), 1},
		{"id errors", testutil.ToFloat64(m.idErrors), 1},
		{"kvs calls", testutil.ToFloat64(m.kvsCalls.WithLabelValues("GetIceServerConfig", "ok")), 1},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if n := testutil.CollectAndCount(m.recoveryDuration); n != 1 {
		t.Errorf("recovery duration series = %d, want 1 (failed recoveries are not timed)", n)
	}
	lint, err := testutil.GatherAndLint(reg)
	if err != nil || len(lint) > 0 {
		var probs []string
		for _, p := range lint {
			probs = append(probs, p.Metric+": "+p.Text)
		}
		t.Errorf("metric lint: %v %s", err, strings.Join(probs, "; "))
	}
}
