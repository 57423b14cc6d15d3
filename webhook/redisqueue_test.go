package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/internal/redistest"
	"github.com/acme/viewersession/sessionmgr"
)

// newRedis starts a private redis-server for the test (the queue's keys
// are fixed, so tests must not share one).
func newRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// httpReceiver is a real HTTP receiver: it verifies each request, fails
// the first failFirst attempts of each event id with 500, and records the
// accepted ones.
type httpReceiver struct {
	srv       *httptest.Server
	failFirst int

	mu       sync.Mutex
	tries    map[string]int
	accepted map[string]int // event id -> accepted deliveries
	times    map[string][]time.Time
	bad      []string
	all      chan string // an accepted event's id
}

func newHTTPReceiver(t *testing.T, failFirst int) *httpReceiver {
	r := &httpReceiver{failFirst: failFirst, tries: map[string]int{}, accepted: map[string]int{}, times: map[string][]time.Time{}, all: make(chan string, 10000)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if err := Verify(testSecret, req.Header.Get(SignatureHeader), body, time.Now(), DefaultTolerance); err != nil {
			r.mu.Lock()
			r.bad = append(r.bad, err.Error())
			r.mu.Unlock()
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var ev Event
		_ = json.Unmarshal(body, &ev)
		r.mu.Lock()
		r.tries[ev.ID]++
		r.times[ev.ID] = append(r.times[ev.ID], time.Now())
		fail := r.tries[ev.ID] <= r.failFirst
		if !fail {
			r.accepted[ev.ID]++
		}
		r.mu.Unlock()
		if fail {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		r.all <- ev.ID
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// waitAccepted waits until n distinct events were accepted.
func (r *httpReceiver) waitAccepted(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	seen := map[string]bool{}
	deadline := time.After(timeout)
	for len(seen) < n {
		select {
		case id := <-r.all:
			seen[id] = true
		case <-deadline:
			t.Fatalf("%d events accepted after %v, want %d", len(seen), timeout, n)
		}
	}
}

func newRedisDispatcher(t *testing.T, rdb redis.UniversalClient, consumer, url string, cfg Config) *Dispatcher {
	t.Helper()
	cfg.URLs, cfg.Secret, cfg.Consumer = []string{url}, testSecret, consumer
	d := NewRedis(cfg, rdb, WithLogger(slog.New(slog.NewTextHandler(testWriter{t}, nil)).With("consumer", consumer)))
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	return d
}

func sessionRef(i int) sessionmgr.SessionRef {
	return sessionmgr.SessionRef{ID: sessionmgr.SessionID(fmt.Sprintf("session%019d", i)), ChannelARN: "arn:channel/x", ViewerID: "tv"}
}

// TestRedisReplicasDeliverOnce: two replicas share the queue; a receiver
// that fails the first two attempts of each event gets every event,
// verified, accepted exactly once.
func TestRedisReplicasDeliverOnce(t *testing.T) {
	rdb := newRedis(t)
	r := newHTTPReceiver(t, 2)
	cfg := Config{Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, ClaimIdle: time.Second}
	a := newRedisDispatcher(t, rdb, "A", r.srv.URL, cfg)
	b := newRedisDispatcher(t, rdb, "B", r.srv.URL, cfg)
	const n = 40
	for i := range n {
		d := a
		if i%2 == 1 {
			d = b
		}
		d.Observe(sessionRef(i), sessionmgr.Event{Seq: 1, Time: time.Now(), Type: sessionmgr.EventCreated})
	}
	r.waitAccepted(t, n, 20*time.Second)
	_ = a.Close(t.Context())
	_ = b.Close(t.Context())
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, c := range r.accepted {
		if c != 1 {
			t.Errorf("event %s accepted %d times, want 1", id, c)
		}
	}
	if len(r.bad) > 0 {
		t.Errorf("requests that did not verify: %v", r.bad)
	}
	if got := rdb.XLen(t.Context(), streamKey).Val(); got != 0 {
		t.Errorf("stream length after every delivery = %d, want 0", got)
	}
}

// TestRedisClaimFromDeadReplica: deliveries a replica took and then
// never touched again (it was SIGKILLed) are claimed by another after
// ClaimIdle and delivered.
func TestRedisClaimFromDeadReplica(t *testing.T) {
	rdb := newRedis(t)
	r := newHTTPReceiver(t, 0)
	dead := newRedisQueue(rdb, "dead", 1000, time.Second)
	const n = 5
	for i := range n {
		body, _ := json.Marshal(Event{ID: fmt.Sprintf("evt_%d", i), Type: Created, Session: "sessions/x"})
		if _, err := dead.add(t.Context(), "", time.Hour, []item{{url: r.srv.URL, body: body}}); err != nil {
			t.Fatal(err)
		}
	}
	taken, err := dead.next(t.Context(), n)
	if err != nil || len(taken) != n {
		t.Fatalf("the dead replica's next = %d entries, %v; want %d", len(taken), err, n)
	}
	start := time.Now()
	newRedisDispatcher(t, rdb, "B", r.srv.URL, Config{ClaimIdle: 500 * time.Millisecond})
	r.waitAccepted(t, n, 10*time.Second)
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Errorf("claimed after %v, want no sooner than ClaimIdle (500ms)", took)
	}
}

// TestRedisTouchKeepsDeliveries: a live replica waiting out a backoff
// keeps its delivery: the other replica does not claim it (the second
// attempt comes after the backoff, and there is no third).
func TestRedisTouchKeepsDeliveries(t *testing.T) {
	rdb := newRedis(t)
	r := newHTTPReceiver(t, 1)
	cfg := Config{Backoff: 3 * time.Second, MaxBackoff: 3 * time.Second, ClaimIdle: 300 * time.Millisecond}
	a := newRedisDispatcher(t, rdb, "A", r.srv.URL, cfg)
	b := newRedisDispatcher(t, rdb, "B", r.srv.URL, cfg)
	a.Observe(sessionRef(1), sessionmgr.Event{Seq: 1, Time: time.Now(), Type: sessionmgr.EventCreated})
	r.waitAccepted(t, 1, 10*time.Second)
	_ = a.Close(t.Context())
	_ = b.Close(t.Context())
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, ts := range r.times {
		if len(ts) != 2 {
			t.Fatalf("event %s: %d attempts, want 2", id, len(ts))
		}
		if gap := ts[1].Sub(ts[0]); gap < 1500*time.Millisecond {
			t.Errorf("second attempt %v after the first, want after the backoff (>= 1.5s): claimed by the other replica?", gap)
		}
	}
}

// TestRedisAddOnceAndBounded: a once mark lets one add through, whichever
// replica adds; the stream is trimmed to about MaxQueue.
func TestRedisAddOnceAndBounded(t *testing.T) {
	rdb := newRedis(t)
	a := newRedisQueue(rdb, "A", 10, time.Second)
	b := newRedisQueue(rdb, "B", 10, time.Second)
	it := []item{{url: "http://x.test/", body: []byte("{}")}}
	for i, tt := range []struct {
		q    *redisQueue
		once string
		want bool
	}{{a, "media:s1", true}, {b, "media:s1", false}, {a, "media:s1", false}, {b, "media:s2", true}, {a, "", true}, {a, "", true}} {
		got, err := tt.q.add(t.Context(), tt.once, time.Hour, it)
		if err != nil || got != tt.want {
			t.Errorf("add %d (once %q) = %v, %v; want %v", i, tt.once, got, err, tt.want)
		}
	}
	if ttl := rdb.PTTL(t.Context(), onceKey("media:s1")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("once mark TTL = %v, want within (0, 1h]", ttl)
	}
	for range 1000 {
		if _, err := a.add(t.Context(), "", time.Hour, it); err != nil {
			t.Fatal(err)
		}
	}
	// MAXLEN ~ trims whole stream nodes (100 entries each by default).
	if n := rdb.XLen(t.Context(), streamKey).Val(); n > 10+100 {
		t.Errorf("stream length after 1004 adds with MaxQueue 10 = %d, want at most about 10", n)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
