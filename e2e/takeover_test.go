package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// withToken adds a session token to a call.
func withToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// joinOnce joins the session over Connect on api, waits for Joined and
// leaves (the stream ends): one app reconnect.
func joinOnce(t *testing.T, api vspb.ViewerSessionServiceClient, name, token string) *vspb.Joined {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	stream, err := api.Connect(withToken(ctx, token))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&vspb.ConnectRequest{Message: &vspb.ConnectRequest_Join{Join: &vspb.Join{Name: name}}}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("join: %v", err)
		}
		if j := m.GetJoined(); j != nil {
			return j
		}
	}
}

// Issue 15, acceptance 2 (defect 6) on the real binaries: one app joining
// alternately on two replicas, 25 joins in 5 s, moved its session at
// every join (25 takeovers, each a new clientId and a KVS connect that
// delayed the channel's other viewers). At most 1 takeover now: while the
// owner lives a join elsewhere is forwarded to it.
func TestAlternatingJoinsTwoReplicas(t *testing.T) {
	c := newClusterOf(t, clusterSpec{ids: []string{"A", "B"}})
	a, b := c.replicas[0], c.replicas[1]
	arn := c.channel(t, "flip")
	cs := create(t, a.api, arn, "flipper")
	name, token := cs.GetSession().GetName(), cs.GetSessionToken()
	connectsBefore := c.emu.Counters().Connects["VIEWER"]

	start := time.Now()
	owners := map[string]int{}
	for i := range 25 {
		r := a
		if i%2 == 1 {
			r = b
		}
		j := joinOnce(t, r.api, name, token)
		owners[j.GetSession().GetClientId()]++
		time.Sleep(200*time.Millisecond - time.Since(start)%(200*time.Millisecond)) // 25 joins in 5 s
	}
	elapsed := time.Since(start)

	closeSession(t, b.api, name)
	all := fullTimeline(t, a.api, name)
	takeovers := 0
	for _, e := range all {
		if e.GetType() == vspb.EventType_EVENT_TYPE_OWNER_CHANGED {
			takeovers++
		}
	}
	logged := 0
	for _, r := range c.replicas {
		logged += strings.Count(readLog(t, r), `"msg":"session taken over"`)
	}
	connects := c.emu.Counters().Connects["VIEWER"] - connectsBefore
	t.Logf("25 alternating joins on A and B in %v: %d takeovers (OWNER_CHANGED), %d logged, %d viewer KVS connects, clientIds seen %v",
		elapsed.Round(time.Millisecond), takeovers, logged, connects, owners)
	if takeovers > 1 || logged > 1 {
		t.Errorf("%d takeovers (%d logged) for 25 alternating joins, want at most 1", takeovers, logged)
	}
	if connects > 1 {
		t.Errorf("%d viewer KVS connects for 25 joins of one session, want at most 1", connects)
	}
}

func readLog(t *testing.T, r *replica) string {
	t.Helper()
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
