package e2e

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/acme/viewersession/kvsemu"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/viewerclient"
)

// fleet is a set of apps, all CONNECTED with media, and what each had
// seen when the fault struck.
type fleet struct {
	apps   []*app
	arns   []string
	before []uint64   // last sequence seen before the fault
	ids    [][]string // clientIds on the timeline before the fault
	pkts   []int64    // RTP packets before the fault
}

// startFleet creates perChannel sessions on each channel through create
// and runs an app for each over conns (app i uses conns[i%len(conns)]);
// it returns once every app is CONNECTED and has media.
func startFleet(t *testing.T, api vspb.ViewerSessionServiceClient, arns []string, perChannel int, conns []*grpc.ClientConn) *fleet {
	t.Helper()
	f := &fleet{arns: arns}
	for ci, arn := range arns {
		for i := range perChannel {
			// One viewer id per channel: the clientIds are tv, tv-2, tv-3...,
			// so a reuse of a dead replica's id would show.
			cs := create(t, api, arn, "tv")
			n := len(f.apps)
			f.apps = append(f.apps, startApp(t, fmt.Sprintf("app%02d(ch%d/%d)", n, ci, i), conns[n%len(conns)], cs, viewerclient.ModeConnect))
		}
	}
	start := time.Now()
	for _, a := range f.apps {
		a.wait(t, 60*time.Second, "CONNECTED", connected)
	}
	for _, a := range f.apps {
		a.rtp(t, 20, 30*time.Second)
	}
	t.Logf("%d apps CONNECTED with media in %v", len(f.apps), time.Since(start).Round(time.Millisecond))
	return f
}

// mark records what every app has seen, just before a fault.
func (f *fleet) mark() {
	f.before, f.ids, f.pkts = nil, nil, nil
	for _, a := range f.apps {
		st := a.c.Stats()
		f.before = append(f.before, st.LastSequence)
		f.ids = append(f.ids, clientIDs(a.c.Events(), st.LastSequence))
		f.pkts = append(f.pkts, st.PacketsReceived)
	}
}

// freshMedia waits until every app has received 20 more RTP packets.
func (f *fleet) freshMedia(t *testing.T) {
	t.Helper()
	var want []int64
	for _, a := range f.apps {
		want = append(want, a.c.Stats().PacketsReceived+20)
	}
	for i, a := range f.apps {
		a.rtp(t, want[i], 30*time.Second)
	}
}

// closeAll closes every session and checks each app's timeline against the
// backend's: identical and contiguous. It returns the events checked.
func (f *fleet) closeAll(t *testing.T, api vspb.ViewerSessionServiceClient) int {
	t.Helper()
	for _, a := range f.apps {
		closeSession(t, api, a.cs.GetSession().GetName())
	}
	checked := 0
	for _, a := range f.apps {
		if err := a.ended(t, 20*time.Second); err != nil {
			t.Errorf("%s: Run = %v after CloseSession, want nil", a.name, err)
			continue
		}
		all := fullTimeline(t, api, a.cs.GetSession().GetName())
		if err := contiguous(all); err != nil {
			t.Errorf("%s: %v", a.name, err)
		}
		if err := sameTimeline(a.c.Events(), all); err != nil {
			t.Errorf("%s: the app's timeline vs the stored one: %v", a.name, err)
		}
		if st := a.c.Stats(); st.SequenceGaps != 0 {
			t.Errorf("%s: the app saw %d sequence gaps", a.name, st.SequenceGaps)
		}
		checked += len(all)
	}
	return checked
}

// Acceptance 3: SIGKILL the replica that owns 20 live sessions (2 channels
// of 10). Every app resumes on a survivor and is CONNECTED again with a
// new clientId; no timeline has a gap; no clientId of the dead replica is
// used again within its cooldown.
//
// The apps reach the service through pick_first connections that prefer
// the victim, so all 20 sessions live there. In one_survivor every app
// fails over to B; in two_survivors half go to B and half to C, as behind
// a load balancer.
func TestKillOwner(t *testing.T) {
	tests := []struct {
		name   string
		spread bool
	}{
		{"one_survivor", false},
		{"two_survivors", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { testKillOwner(t, tt.spread) })
	}
}

func testKillOwner(t *testing.T, spread bool) {
	c := newCluster(t)
	victim, b, cc := c.replicas[0], c.replicas[1], c.replicas[2]
	arns := []string{c.channel(t, "kill-1"), c.channel(t, "kill-2")}
	toB, _ := balancedConn(t, "pick_first", false, []*replica{victim, b, cc})
	conns := []*grpc.ClientConn{toB}
	if spread {
		toC, _ := balancedConn(t, "pick_first", false, []*replica{victim, cc, b})
		conns = append(conns, toC)
	}
	f := startFleet(t, victim.api, arns, 10, conns)
	f.mark()

	killed := time.Now()
	victim.Kill()
	if _, _, err := victim.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}

	reused := 0
	var (
		mu        sync.Mutex
		recovery  []time.Duration
		wg        sync.WaitGroup
		newIDs    = make([][]string, len(f.apps))
		failedRun []error
	)
	for i := range f.apps {
		wg.Go(func() {
			// t.Fatal is not for other goroutines: check here, report below.
			a := f.apps[i]
			e, err := a.c.WaitEvent(t.Context(), after(f.before[i], func(e *vspb.SessionEvent) bool {
				return connected(e) && !slices.Contains(f.ids[i], e.GetClientId())
			}))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				evs := a.c.Events()
				failedRun = append(failedRun, fmt.Errorf("%s: no CONNECTED after the kill: %v (timeline:%s; last event %v)", a.name, err, summary(evs), evs[len(evs)-1]))
				return
			}
			recovery = append(recovery, e.GetTime().AsTime().Sub(killed))
		})
	}
	waitGroupTimeout(t, &wg, 90*time.Second)
	for _, err := range failedRun {
		t.Error(err)
	}
	if t.Failed() {
		t.Fatalf("KVS signaling connects: %v", c.emu.Counters().Connects)
	}
	t.Logf("all apps CONNECTED again %v after the kill", time.Since(killed).Round(time.Millisecond))
	f.freshMedia(t)
	for i, a := range f.apps {
		if err := a.running(); err != nil {
			t.Errorf("after the kill: %v", err)
		}
		evs := a.c.Events()
		for _, e := range evs[f.before[i]:] {
			if id := e.GetClientId(); id != "" && !slices.Contains(f.ids[i], id) && !slices.Contains(newIDs[i], id) {
				newIDs[i] = append(newIDs[i], id)
			}
		}
		if !slices.ContainsFunc(evs[f.before[i]:], isType(vspb.EventType_EVENT_TYPE_OWNER_CHANGED)) {
			t.Errorf("%s: no OWNER_CHANGED after the kill (timeline:%s)", a.name, summary(evs[f.before[i]:]))
		}
	}

	// No clientId of the dead replica on any later KVS message within its
	// cooldown (the emulator's log), nor allocated to any session (the
	// timelines). ClientIds are per channel: keys are "arn clientId".
	dead := map[string]bool{}
	for i, ids := range f.ids {
		for _, id := range ids {
			dead[f.apps[i].arn()+" "+id] = true
		}
	}
	var msgs []kvsemu.MessageRecord
	for _, arn := range arns {
		for _, m := range c.emu.Messages(arn) {
			if m.From == "viewer" && m.Time.Before(killed) {
				dead[arn+" "+m.ClientID] = true
			}
			if m.From == "viewer" && m.Time.After(killed) {
				msgs = append(msgs, m)
				if dead[arn+" "+m.ClientID] && m.Time.Before(killed.Add(cooldown)) {
					t.Errorf("clientId %s of the dead replica sent %s %v after the kill, within its %v cooldown", m.ClientID, m.Type, m.Time.Sub(killed), cooldown)
					reused++
				}
			}
		}
	}
	timeouts := 0
	for i, a := range f.apps {
		for _, e := range a.c.Events()[f.before[i]:] {
			switch {
			case e.GetType() == vspb.EventType_EVENT_TYPE_ANSWER_TIMEOUT:
				timeouts++
			case e.GetType() == vspb.EventType_EVENT_TYPE_CLIENT_ID_ALLOCATED && dead[a.arn()+" "+e.GetClientId()] && e.GetTime().AsTime().Before(killed.Add(cooldown)):
				t.Errorf("%s: clientId %s of the dead replica allocated again %v after the kill", a.name, e.GetClientId(), e.GetTime().AsTime().Sub(killed))
				reused++
			}
		}
	}

	t.Logf("media and clientIds checked %v after the kill", time.Since(killed).Round(time.Millisecond))
	events := f.closeAll(t, b.api)
	t.Logf("sessions closed and timelines checked %v after the kill", time.Since(killed).Round(time.Millisecond))
	newCount := 0
	for _, ids := range newIDs {
		newCount += len(ids)
	}
	t.Logf("KVS signaling connects: %v", c.emu.Counters().Connects)
	t.Logf("summary: sessions moved %d/%d; recovery (kill -> CONNECTED) p50 %v max %v; events checked %d; clientIds checked %d of the dead replica against %d later KVS viewer messages and %d new clientIds allocated after it (cooldown %v), reused within cooldown %d; %d answer timeouts during recovery",
		len(recovery), len(f.apps), percentile(recovery, 50).Round(time.Millisecond), percentile(recovery, 100).Round(time.Millisecond),
		events, len(dead), len(msgs), newCount, cooldown, reused, timeouts)
}

// waitGroupTimeout waits for wg, failing the test after timeout.
func waitGroupTimeout(t *testing.T, wg *sync.WaitGroup, timeout time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatalf("still waiting after %v", timeout)
	}
}
