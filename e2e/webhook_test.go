package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/webhook"
)

// webhookSecret is the replicas' -webhook-secret.
const webhookSecret = "e2e-webhook-secret-0123456789"

// hookReceiver is a backend's webhook endpoint: it verifies every request
// (signature and replay window), fails the first two attempts of each
// event id with 500, and keeps the events it accepted, by id.
type hookReceiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	attempts map[string]int
	accepted map[string][]webhook.Event // id -> each accepted delivery
	bad      []string
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{attempts: map[string]int{}, accepted: map[string][]webhook.Event{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err == nil {
			err = webhook.Verify([]byte(webhookSecret), req.Header.Get(webhook.SignatureHeader), body, time.Now(), webhook.DefaultTolerance)
		}
		var ev webhook.Event
		if err == nil {
			err = json.Unmarshal(body, &ev)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.bad = append(r.bad, err.Error())
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		r.attempts[ev.ID]++
		if r.attempts[ev.ID] <= 2 {
			http.Error(w, "not now", http.StatusInternalServerError)
			return
		}
		r.accepted[ev.ID] = append(r.accepted[ev.ID], ev)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// hookKey is one timeline event's webhook.
type hookKey struct {
	session string
	seq     uint64
	typ     webhook.Type
}

// deduped returns the accepted events, deduped by id, by timeline event;
// several ids for one timeline event would show as a count above 1.
func (r *hookReceiver) deduped() map[hookKey]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[hookKey]int{}
	for _, evs := range r.accepted {
		out[hookKey{evs[0].Session, evs[0].Sequence, evs[0].Type}]++
	}
	return out
}

// wantHooks are the webhooks a stored timeline calls for: CREATED, the
// first MEDIA_FLOWING, every RECOVERED, FAILED and CLOSED.
func wantHooks(name string, tl []*vspb.SessionEvent) []hookKey {
	var out []hookKey
	media := false
	for _, e := range tl {
		var typ webhook.Type
		switch e.GetType() {
		case vspb.EventType_EVENT_TYPE_CREATED:
			typ = webhook.Created
		case vspb.EventType_EVENT_TYPE_MEDIA_FLOWING:
			if media {
				continue
			}
			media, typ = true, webhook.MediaFlowing
		case vspb.EventType_EVENT_TYPE_RECOVERED:
			typ = webhook.Recovered
		case vspb.EventType_EVENT_TYPE_FAILED:
			typ = webhook.Failed
		case vspb.EventType_EVENT_TYPE_CLOSED:
			typ = webhook.Closed
		default:
			continue
		}
		out = append(out, hookKey{name, e.GetSequence(), typ})
	}
	return out
}

// Issue 17, acceptance 1: three replicas send webhooks to a receiver that
// fails the first two deliveries of each event. Every event of every
// session's timeline arrives, verified, exactly once after dedupe by id,
// although the replica that held deliveries in progress is SIGKILLed
// mid-way (another replica claims and finishes them).
func TestWebhooksSurviveKill(t *testing.T) {
	hooks := newHookReceiver(t)
	c := newClusterOf(t, clusterSpec{ids: []string{"A", "B", "C"}, extraArgs: []string{
		"-webhook-url", hooks.srv.URL,
		"-webhook-secret", webhookSecret,
		"-webhook-backoff", "1s",
		"-webhook-claim-idle", "2s",
	}})
	rdb := redis.NewClient(&redis.Options{Addr: c.redis.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })

	// Two sessions owned by each replica, each with an app whose
	// connection falls back to the other replicas.
	arns := []string{c.channel(t, "hooks-1"), c.channel(t, "hooks-2")}
	var apps []*app
	for i := range 6 {
		owner := c.replicas[i%3]
		order := []*replica{owner}
		for _, r := range c.replicas {
			if r != owner {
				order = append(order, r)
			}
		}
		conn, _ := balancedConn(t, "pick_first", false, order)
		cs := create(t, owner.api, arns[i%2], fmt.Sprintf("hooks-%d", i))
		apps = append(apps, startApp(t, fmt.Sprintf("app%d(%s)", i, owner.id), conn, cs, 0 /* ModeConnect */))
	}
	for _, a := range apps {
		a.wait(t, 30*time.Second, "MEDIA_FLOWING", isType(vspb.EventType_EVENT_TYPE_MEDIA_FLOWING))
	}

	// The media_flowing deliveries are in their backoff now: kill the
	// replica holding the most deliveries in progress.
	victim, held := deliveringReplica(t, c, rdb)
	victim.Kill()
	if _, _, err := victim.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGKILLed replica %s holding %d deliveries in progress", victim.id, held)
	var survivor *replica
	for _, r := range c.replicas {
		if r != victim {
			survivor = r
			break
		}
	}

	// The apps on the victim fail over; then every session is closed.
	for _, a := range apps {
		a.rtp(t, a.c.Stats().PacketsReceived+20, 30*time.Second)
	}
	var want []hookKey
	for _, a := range apps {
		closeSession(t, survivor.api, a.cs.GetSession().GetName())
	}
	for _, a := range apps {
		if err := a.ended(t, 20*time.Second); err != nil {
			t.Errorf("%s: Run = %v after CloseSession, want nil", a.name, err)
		}
		name := a.cs.GetSession().GetName()
		want = append(want, wantHooks(name, fullTimeline(t, survivor.api, name))...)
	}

	// Every webhook arrives (polling the receiver, another goroutine's
	// state, with a deadline).
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := hooks.deduped()
		missing := 0
		for _, k := range want {
			if got[k] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d webhooks missing after 30s; got %v, want %v", missing, len(want), got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got := hooks.deduped()
	for _, k := range want {
		if got[k] != 1 {
			t.Errorf("webhook %+v: %d distinct ids, want exactly 1", k, got[k])
		}
		delete(got, k)
	}
	for k, n := range got {
		t.Errorf("unexpected webhook %+v (%d ids): not on the session's timeline", k, n)
	}
	hooks.mu.Lock()
	defer hooks.mu.Unlock()
	if len(hooks.bad) > 0 {
		t.Errorf("%d requests did not verify: %v", len(hooks.bad), hooks.bad)
	}
	dup := 0
	for _, evs := range hooks.accepted {
		dup += len(evs) - 1
	}
	t.Logf("%d webhooks (%d sessions x created, media_flowing, recovered..., closed) each accepted once after dedupe by id; "+
		"%d accepted again under the same id (a redelivery), every request verified", len(want), len(apps), dup)
	for _, typ := range []webhook.Type{webhook.Created, webhook.MediaFlowing, webhook.Closed} {
		n := 0
		for _, k := range want {
			if k.typ == typ {
				n++
			}
		}
		if n != len(apps) {
			t.Errorf("%s webhooks on the timelines = %d, want one per session (%d)", typ, n, len(apps))
		}
	}
}

// deliveringReplica waits until some replica holds webhook deliveries in
// progress (the stream's pending entries, by consumer) and returns the one
// holding the most, and how many.
func deliveringReplica(t *testing.T, c *cluster, rdb *redis.Client) (*replica, int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := rdb.XPending(t.Context(), "vs:v1:{webhooks}:q", "deliver").Result()
		if err == nil && res.Count > 0 {
			ids := make([]string, 0, len(res.Consumers))
			for id := range res.Consumers {
				ids = append(ids, id)
			}
			slices.SortFunc(ids, func(a, b string) int { return int(res.Consumers[b] - res.Consumers[a]) })
			for _, r := range c.replicas {
				if r.id == ids[0] {
					return r, int(res.Consumers[ids[0]])
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replica holds webhook deliveries in progress after 10s (XPENDING: %v, %v)", res, err)
		}
		time.Sleep(20 * time.Millisecond) // polling Redis, another process
	}
}
