package e2e

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// Acceptance 4: SIGTERM a replica with live sessions. Every app gets
// going-away, resumes on another replica and is CONNECTED again; no stream
// ends with an error status; the process exits 0 within the drain timeout.
//
// The apps' connections start with the victim as the only address (all
// six sessions live there), then learn B and C (the load balancer's
// endpoints grew). In health_checked_round_robin the connection checks
// gRPC health, as a load balancer would, so a draining replica (health
// NOT_SERVING) gets no new streams. In pick_first the connection keeps
// its one HTTP/2 connection to the victim for as long as it is up, like
// an app behind an L4 load balancer.
func TestTermOwner(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		health bool
	}{
		{"health_checked_round_robin", "round_robin", true},
		{"pick_first", "pick_first", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { testTermOwner(t, tt.policy, tt.health) })
	}
}

func testTermOwner(t *testing.T, policy string, health bool) {
	c := newCluster(t)
	victim := c.replicas[0]
	arn := c.channel(t, "drain")
	rec := newStatusRecorder()
	conn, res := balancedConn(t, policy, health, c.replicas[:1], rec.option())
	f := startFleet(t, victim.api, []string{arn}, 6, []*grpc.ClientConn{conn})
	res.UpdateState(resolver.State{Addresses: addresses(c.replicas)})
	f.mark()

	termed := time.Now()
	victim.Term()

	var (
		mu       sync.Mutex
		moved    []time.Duration
		problems []error
		wg       sync.WaitGroup
	)
	for i, a := range f.apps {
		wg.Go(func() {
			ga, err := a.c.WaitEvent(t.Context(), after(f.before[i], isType(vspb.EventType_EVENT_TYPE_GOING_AWAY)))
			var e *vspb.SessionEvent
			if err == nil {
				e, err = a.c.WaitEvent(t.Context(), after(ga.GetSequence(), func(e *vspb.SessionEvent) bool {
					return connected(e) && !slices.Contains(f.ids[i], e.GetClientId())
				}))
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				problems = append(problems, fmt.Errorf("%s: no GOING_AWAY then CONNECTED after SIGTERM: %v (timeline:%s)", a.name, err, summary(a.c.Events())))
				return
			}
			moved = append(moved, e.GetTime().AsTime().Sub(termed))
		})
	}
	code, exited, err := victim.Wait(drainTimeout + 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	took := exited.Sub(termed)
	if code != 0 || took > drainTimeout {
		t.Errorf("the replica exited with code %d %v after SIGTERM, want 0 within the drain timeout %v", code, took.Round(time.Millisecond), drainTimeout)
	}
	if victim.logContains("drain timeout reached") {
		t.Errorf("the replica cut streams at the drain timeout (log: \"drain timeout reached\")")
	}
	waitGroupTimeout(t, &wg, 60*time.Second)
	for _, err := range problems {
		t.Error(err)
	}
	if len(problems) > 0 {
		t.FailNow()
	}
	f.freshMedia(t)
	for i, a := range f.apps {
		if err := a.running(); err != nil {
			t.Errorf("after SIGTERM: %v", err)
		}
		if !slices.ContainsFunc(a.c.Events()[f.before[i]:], isType(vspb.EventType_EVENT_TYPE_OWNER_CHANGED)) {
			t.Errorf("%s: no OWNER_CHANGED after SIGTERM", a.name)
		}
	}
	for _, err := range rec.errors() {
		t.Errorf("a stream ended with an error status (client side): %v", err)
	}
	for _, r := range c.replicas {
		for _, line := range r.streamErrors() {
			t.Errorf("replica %s ended a stream with an error status: %s", r.id, line)
		}
	}
	events := f.closeAll(t, c.replicas[1].api)
	t.Logf("summary: sessions moved %d/%d; SIGTERM -> CONNECTED elsewhere p50 %v max %v; exit code %d after %v (drain timeout %v); stream ends %s; events checked %d",
		len(moved), len(f.apps), percentile(moved, 50).Round(time.Millisecond), percentile(moved, 100).Round(time.Millisecond),
		code, took.Round(time.Millisecond), drainTimeout, rec.summary(), events)
}
