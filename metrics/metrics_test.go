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
	m.RecoveryStep(sessionmgr.StepICERestart, sessionmgr.OutcomeFingerprintChanged)
	m.RecoveryStep(sessionmgr.StepNewPeerConnection, sessionmgr.OutcomeRecovered)
	m.RecoveryStep(sessionmgr.StepNewClientID, sessionmgr.OutcomeTimeout)
	m.Outage(sessionmgr.StepNewPeerConnection, 1500*time.Millisecond)
	m.MediaStall()
	m.FirstVideo(700 * time.Millisecond)
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
		{"ice restart replaced", testutil.ToFloat64(m.recoverySteps.WithLabelValues("ice_restart", "fingerprint_changed")), 1},
		{"new peer connection recovered", testutil.ToFloat64(m.recoverySteps.WithLabelValues("new_peer_connection", "recovered")), 1},
		{"new clientId timed out", testutil.ToFloat64(m.recoverySteps.WithLabelValues("new_client_id", "timeout")), 1},
		{"media stalls", testutil.ToFloat64(m.mediaStalls), 1},
		{"collisions", testutil.ToFloat64(m.idCollisions), 1},
		{"id errors", testutil.ToFloat64(m.idErrors), 1},
		{"kvs calls", testutil.ToFloat64(m.kvsCalls.WithLabelValues("GetIceServerConfig", "ok")), 1},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if n := testutil.CollectAndCount(m.outage); n != 1 {
		t.Errorf("outage series = %d, want 1 (the step that recovered)", n)
	}
	want := `
# HELP vss_outage_seconds Video outages that recovered: from the first sign (last video progress, a disconnected or failed report, a network change) to video flowing again, by the step that brought it back.
# TYPE vss_outage_seconds histogram
vss_outage_seconds_bucket{step="new_peer_connection",le="0.25"} 0
vss_outage_seconds_bucket{step="new_peer_connection",le="0.5"} 0
vss_outage_seconds_bucket{step="new_peer_connection",le="1"} 0
vss_outage_seconds_bucket{step="new_peer_connection",le="1.5"} 1
vss_outage_seconds_bucket{step="new_peer_connection",le="2"} 1
vss_outage_seconds_bucket{step="new_peer_connection",le="3"} 1
vss_outage_seconds_bucket{step="new_peer_connection",le="5"} 1
vss_outage_seconds_bucket{step="new_peer_connection",le="8"} 1
vss_outage_seconds_bucket{step="new_peer_connection",le="13"} 1
vss_outage_seconds_bucket{step="new_peer_connection",le="21"} 1
vss_outage_seconds_bucket{step="new_peer_connection",le="30"} 1
vss_outage_seconds_bucket{step="new_peer_connection",le="60"} 1
vss_outage_seconds_bucket{step="new_peer_connection",le="+Inf"} 1
vss_outage_seconds_sum{step="new_peer_connection"} 1.5
vss_outage_seconds_count{step="new_peer_connection"} 1
`
	if err := testutil.CollectAndCompare(m.outage, strings.NewReader(want)); err != nil {
		t.Errorf("vss_outage_seconds: %v", err)
	}
	if n := testutil.CollectAndCount(m.firstVideo); n != 1 {
		t.Errorf("first video series = %d, want 1", n)
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
