package webhook

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/acme/viewersession/sessionmgr"
)

var testSecret = []byte("test-secret-0123456789abcdef")

// attempt is one request a receiver got.
type attempt struct {
	at     time.Time
	url    string
	header string
	body   []byte
	ev     Event
}

// receiver is an in-process HTTP receiver (a RoundTripper, so that it
// runs inside a synctest bubble): it answers 500 to the first failFirst
// attempts of each event id and URL, then status ok.
type receiver struct {
	failFirst int
	always    int // when not 0, the status of every attempt

	mu       sync.Mutex
	seen     map[string]int // event id + URL -> attempts
	attempts []attempt
	got      chan attempt
}

func newReceiver(failFirst int) *receiver {
	return &receiver{failFirst: failFirst, seen: make(map[string]int), got: make(chan attempt, 1000)}
}

func (r *receiver) RoundTrip(req *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(req.Body)
	a := attempt{at: time.Now(), url: req.URL.String(), header: req.Header.Get(SignatureHeader), body: body}
	_ = json.Unmarshal(body, &a.ev)
	r.mu.Lock()
	r.seen[a.ev.ID+" "+a.url]++
	n := r.seen[a.ev.ID+" "+a.url]
	r.attempts = append(r.attempts, a)
	r.mu.Unlock()
	r.got <- a
	status := http.StatusOK
	switch {
	case r.always != 0:
		status = r.always
	case n <= r.failFirst:
		status = http.StatusInternalServerError
	}
	return &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}, Request: req}, nil
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.attempts)
}

var testRef = sessionmgr.SessionRef{ID: "abcdefghijklmnopqrstuvwxyz", ChannelARN: "arn:channel/x", ChannelName: "x", ViewerID: "tv"}

func newTestDispatcher(t *testing.T, r *receiver, cfg Config) *Dispatcher {
	t.Helper()
	if cfg.URLs == nil {
		cfg.URLs = []string{"http://receiver.test/hook"}
	}
	cfg.Secret = testSecret
	d := NewMemory(cfg, WithHTTPClient(&http.Client{Transport: r}), WithLogger(slog.New(slog.DiscardHandler)))
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	return d
}

// TestRetryBackoff: a receiver that fails the first two attempts gets
// the event a third time, after a backoff that doubles (with jitter: each
// wait between half and all of base x 2^(n-1)); every attempt is signed
// at its own time and verifies.
func TestRetryBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReceiver(2)
		d := newTestDispatcher(t, r, Config{Backoff: time.Second, MaxBackoff: time.Minute})
		d.Observe(testRef, sessionmgr.Event{Seq: 1, Time: time.Now(), Type: sessionmgr.EventCreated})
		var as []attempt
		for range 3 {
			as = append(as, <-r.got)
		}
		for i, a := range as {
			if err := Verify(testSecret, a.header, a.body, a.at, DefaultTolerance); err != nil {
				t.Errorf("attempt %d: Verify = %v", i+1, err)
			}
			if a.ev.ID != as[0].ev.ID || a.ev.Type != Created || a.ev.Sequence != 1 {
				t.Errorf("attempt %d: event %+v, want the first's id %s, session.created, sequence 1", i+1, a.ev, as[0].ev.ID)
			}
		}
		for i, bounds := range [][2]time.Duration{{500 * time.Millisecond, time.Second}, {time.Second, 2 * time.Second}} {
			if gap := as[i+1].at.Sub(as[i].at); gap < bounds[0] || gap > bounds[1] {
				t.Errorf("wait after failed attempt %d = %v, want within %v", i+1, gap, bounds)
			}
		}
		synctest.Wait()
		if n := r.count(); n != 3 {
			t.Errorf("attempts = %d, want 3", n)
		}
		if got := testutil.ToFloat64(d.mx.retries); got != 2 {
			t.Errorf("retries = %v, want 2", got)
		}
		if got := testutil.ToFloat64(d.mx.delivered); got != 1 {
			t.Errorf("delivered = %v, want 1", got)
		}
		if n, _ := d.q.depth(t.Context()); n != 0 {
			t.Errorf("queue depth after delivery = %d, want 0", n)
		}
	})
}

// TestGiveUp: after MaxAttempts failed attempts a delivery is given up,
// counted, and leaves the queue.
func TestGiveUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReceiver(0)
		r.always = http.StatusServiceUnavailable
		d := newTestDispatcher(t, r, Config{Backoff: time.Second, MaxBackoff: 4 * time.Second, MaxAttempts: 4})
		d.Observe(testRef, sessionmgr.Event{Seq: 3, Time: time.Now(), Type: sessionmgr.EventClosed, Close: sessionmgr.CloseClientLeft})
		for range 4 {
			<-r.got
		}
		synctest.Wait()
		time.Sleep(time.Hour) // fake time: would any attempt follow?
		synctest.Wait()
		if n := r.count(); n != 4 {
			t.Errorf("attempts = %d, want 4", n)
		}
		if got := testutil.ToFloat64(d.mx.failed); got != 1 {
			t.Errorf("failed = %v, want 1", got)
		}
		if got := testutil.ToFloat64(d.mx.retries); got != 3 {
			t.Errorf("retries = %v, want 3", got)
		}
		if n, _ := d.q.depth(t.Context()); n != 0 {
			t.Errorf("queue depth after giving up = %d, want 0", n)
		}
	})
}

// TestBackoffBounds: the wait doubles from base up to max, each drawn
// from [half, all].
func TestBackoffBounds(t *testing.T) {
	tests := []struct {
		n    int
		want time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {9, 256 * time.Second}, {10, 5 * time.Minute}, {80, 5 * time.Minute}}
	for _, tt := range tests {
		for range 100 {
			if got := backoff(time.Second, 5*time.Minute, tt.n); got < tt.want/2 || got > tt.want {
				t.Fatalf("backoff(1s, 5m, %d) = %v, want within [%v, %v]", tt.n, got, tt.want/2, tt.want)
			}
		}
	}
}

// TestEveryURLOnceMediaOnce: each URL gets each event, with the same id;
// a session's second MEDIA_FLOWING (a new peer connection after a
// recovery) sends nothing; other timeline events send nothing.
func TestEveryURLOnceMediaOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReceiver(0)
		urls := []string{"http://a.test/hook", "http://b.test/hook"}
		d := newTestDispatcher(t, r, Config{URLs: urls})
		other := testRef
		other.ID = "zyxwvutsrqponmlkjihgfedcba"
		now := time.Now()
		for _, o := range []struct {
			ref sessionmgr.SessionRef
			e   sessionmgr.Event
		}{
			{testRef, sessionmgr.Event{Seq: 1, Time: now, Type: sessionmgr.EventCreated}},
			{testRef, sessionmgr.Event{Seq: 2, Time: now, Type: sessionmgr.EventOfferSent}},
			{testRef, sessionmgr.Event{Seq: 3, Time: now, Type: sessionmgr.EventMediaFlowing, Media: &sessionmgr.MediaReport{PeerConnection: 1}}},
			{testRef, sessionmgr.Event{Seq: 4, Time: now, Type: sessionmgr.EventMediaFlowing, Media: &sessionmgr.MediaReport{PeerConnection: 2}}},
			{testRef, sessionmgr.Event{Seq: 5, Time: now, Type: sessionmgr.EventRecovered, Recovery: &sessionmgr.Recovery{Step: sessionmgr.StepNewPeerConnection, Outage: time.Second}}},
			{other, sessionmgr.Event{Seq: 3, Time: now, Type: sessionmgr.EventMediaFlowing, Media: &sessionmgr.MediaReport{PeerConnection: 1}}},
		} {
			d.Observe(o.ref, o.e)
		}
		synctest.Wait()
		type key struct {
			url, session string
			seq          uint64
		}
		got := map[key]string{} // -> event id
		ids := map[string]map[string]bool{}
		r.mu.Lock()
		for _, a := range r.attempts {
			got[key{a.url, a.ev.Session, a.ev.Sequence}] = string(a.ev.Type)
			if ids[a.ev.ID] == nil {
				ids[a.ev.ID] = map[string]bool{}
			}
			ids[a.ev.ID][a.url] = true
		}
		n := len(r.attempts)
		r.mu.Unlock()
		if n != 8 {
			t.Errorf("deliveries = %d, want 8 (4 events x 2 URLs): %v", n, got)
		}
		for _, u := range urls {
			for _, k := range []key{{u, "sessions/" + string(testRef.ID), 1}, {u, "sessions/" + string(testRef.ID), 3},
				{u, "sessions/" + string(testRef.ID), 5}, {u, "sessions/" + string(other.ID), 3}} {
				if _, ok := got[k]; !ok {
					t.Errorf("no delivery of %+v", k)
				}
			}
		}
		for id, us := range ids {
			if len(us) != 2 {
				t.Errorf("event %s went to %v, want both URLs", id, us)
			}
		}
	})
}

// TestObserveNeverBlocks: with the buffer full, Observe drops and counts.
func TestObserveNeverBlocks(t *testing.T) {
	d := &Dispatcher{in: make(chan pending, 2), mx: newMetrics(nil), log: slog.New(slog.DiscardHandler)}
	for i := range 5 {
		d.Observe(testRef, sessionmgr.Event{Seq: uint64(i + 1), Type: sessionmgr.EventCreated})
	}
	d.Observe(testRef, sessionmgr.Event{Seq: 9, Type: sessionmgr.EventOfferSent}) // no webhook: not counted
	if got := testutil.ToFloat64(d.mx.dropped.WithLabelValues(dropBufferFull)); got != 3 {
		t.Errorf("dropped = %v, want 3", got)
	}
}

// TestCloseDuringBackoff: Close returns at once while a delivery waits
// out its backoff; the buffered events are queued first.
func TestCloseDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReceiver(0)
		r.always = http.StatusInternalServerError
		d := newTestDispatcher(t, r, Config{Backoff: time.Hour, MaxBackoff: time.Hour})
		d.Observe(testRef, sessionmgr.Event{Seq: 1, Time: time.Now(), Type: sessionmgr.EventCreated})
		<-r.got
		start := time.Now()
		if err := d.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("Close took %v during a 1h backoff, want at once", took)
		}
	})
}

// TestWithClock: a request is signed at the Dispatcher's clock (the
// receiver verifies it against that time and refuses it an hour later).
func TestWithClock(t *testing.T) {
	r := newReceiver(0)
	at := time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)
	d := NewMemory(Config{URLs: []string{"http://receiver.test/hook"}, Secret: testSecret},
		WithHTTPClient(&http.Client{Transport: r}), WithLogger(slog.New(slog.DiscardHandler)), WithClock(func() time.Time { return at }))
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	d.Observe(testRef, sessionmgr.Event{Seq: 1, Time: at, Type: sessionmgr.EventCreated})
	a := <-r.got
	if err := Verify(testSecret, a.header, a.body, at, time.Second); err != nil {
		t.Errorf("Verify at the clock's time = %v, want nil", err)
	}
	if err := Verify(testSecret, a.header, a.body, at.Add(time.Hour), DefaultTolerance); err == nil {
		t.Error("Verify an hour after the clock's time = nil, want a stale signature")
	}
}
