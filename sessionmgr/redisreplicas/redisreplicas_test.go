package redisreplicas_test

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/acme/viewersession/internal/redistest"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/redisreplicas"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func client(t *testing.T, url string) redis.UniversalClient {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func TestHeartbeat(t *testing.T) {
	c := redisreplicas.New(client(t, redistest.URL(t)))
	r := "hb-" + rand.Text()
	if ok, err := c.Alive(t.Context(), r); err != nil || ok {
		t.Fatalf("Alive before any heartbeat = %v, %v; want false", ok, err)
	}
	if err := c.Heartbeat(t.Context(), r, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Alive(t.Context(), r); !ok {
		t.Fatal("Alive right after a heartbeat = false")
	}
	deadline := time.Now().Add(5 * time.Second)
	for { // Redis expires the key on its own clock
		ok, err := c.Alive(t.Context(), r)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replica still alive 5s after a 300ms heartbeat")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestForward(t *testing.T) {
	rdb := client(t, redistest.URL(t))
	c := redisreplicas.New(rdb)
	owner := "owner-" + rand.Text()
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() {
		served <- c.Serve(ctx, owner, func(_ context.Context, f sessionmgr.Forwarded) sessionmgr.ForwardReply {
			if f.Msg.Offer == "refuse" {
				return sessionmgr.ForwardReply{Err: "OFFER_IN_FLIGHT"}
			}
			return sessionmgr.ForwardReply{Session: sessionmgr.Session{ID: f.Session, Owner: owner, LastSeq: 7}}
		})
	}()
	tests := []struct {
		give    string
		wantErr string
	}{{"v=0 offer", ""}, {"refuse", "OFFER_IN_FLIGHT"}}
	for _, tt := range tests {
		fctx, fcancel := context.WithTimeout(t.Context(), 5*time.Second)
		rep, err := c.Forward(fctx, owner, sessionmgr.Forwarded{Session: "s1", Kind: "app", Msg: sessionmgr.AppMessage{Offer: tt.give}})
		fcancel()
		if err != nil {
			t.Fatalf("Forward(%q): %v", tt.give, err)
		}
		if rep.Err != tt.wantErr {
			t.Errorf("Forward(%q) reply error = %q, want %q", tt.give, rep.Err, tt.wantErr)
		}
		if tt.wantErr == "" && (rep.Session.ID != "s1" || rep.Session.LastSeq != 7) {
			t.Errorf("Forward(%q) session = %+v", tt.give, rep.Session)
		}
	}
	cancel()
	if err := <-served; !errors.Is(err, context.Canceled) {
		t.Errorf("Serve after cancel = %v, want context.Canceled", err)
	}

	// Nobody serves: the forward gives up at its deadline as unavailable.
	fctx, fcancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer fcancel()
	start := time.Now()
	_, err := c.Forward(fctx, "nobody-"+rand.Text(), sessionmgr.Forwarded{Session: "s2", Kind: "app"})
	if !errors.Is(err, sessionmgr.ErrUnavailable) {
		t.Errorf("Forward to nobody = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Forward to nobody took %v, want about its 300ms deadline", d)
	}
}

func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	c := redisreplicas.New(client(t, srv.URL()))
	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := c.Heartbeat(ctx, "x", time.Second); !errors.Is(err, sessionmgr.ErrUnavailable) {
		t.Errorf("Heartbeat with Redis down = %v, want ErrUnavailable", err)
	}
}

func TestPace(t *testing.T) {
	c := redisreplicas.New(client(t, redistest.URL(t)))
	ch := "arn:aws:kinesisvideo:us-west-2:1:channel/pace-" + rand.Text() + "/1"
	// Two "replicas" asking at once share one schedule: 6 turns at 5/s
	// take at least 5 intervals of 200ms.
	start := time.Now()
	turns := make(chan time.Time, 6)
	done := make(chan struct{})
	for range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 3 {
				for {
					wait, err := c.Pace(t.Context(), ch, 5)
					if err != nil {
						t.Error(err)
						return
					}
					if wait == 0 {
						turns <- time.Now()
						break
					}
					time.Sleep(wait) // the wait Pace asked for
				}
			}
		}()
	}
	<-done
	<-done
	close(turns)
	var got []time.Time
	for tm := range turns {
		got = append(got, tm)
	}
	if len(got) != 6 {
		t.Fatalf("%d turns, want 6", len(got))
	}
	if d := time.Since(start); d < 950*time.Millisecond {
		t.Errorf("6 turns at 5/s took %v, want at least 5 x 200ms", d)
	}
}

// The create-rate bucket is one for every replica: two clients (two
// "replicas") share its burst, are refused with the wait until the next
// token, and get a token once it is due.
func TestTake(t *testing.T) {
	url := redistest.URL(t)
	a, b := redisreplicas.New(client(t, url)), redisreplicas.New(client(t, url))
	key := "create:key-" + rand.Text()
	granted := 0
	for i := range 10 {
		c := a
		if i%2 == 1 {
			c = b
		}
		wait, err := c.Take(t.Context(), key, 2, 6)
		if err != nil {
			t.Fatal(err)
		}
		if wait == 0 {
			granted++
		} else if wait > 600*time.Millisecond {
			t.Errorf("refusal %d asks to wait %v, want at most 1/rate = 500ms", i, wait)
		}
	}
	if granted != 6 {
		t.Fatalf("%d of 10 takes granted at burst 6, want 6 (the burst is shared)", granted)
	}
	wait, err := a.Take(t.Context(), key, 2, 6)
	if err != nil || wait == 0 {
		t.Fatalf("Take right after the burst = %v, %v; want a wait", wait, err)
	}
	time.Sleep(wait) // the wait Take asked for
	if w, err := b.Take(t.Context(), key, 2, 6); err != nil || w != 0 {
		t.Errorf("Take after the asked wait = %v, %v; want granted", w, err)
	}
	if w, err := a.Take(t.Context(), "other-"+key, 2, 6); err != nil || w != 0 {
		t.Errorf("another key's first Take = %v, %v; want granted", w, err)
	}
}

// TakeUpTo grants as many whole tokens as the shared bucket holds, up to
// what was asked, and refuses with the wait only when not one is left;
// Take (one token) draws on the same bucket.
func TestTakeUpTo(t *testing.T) {
	url := redistest.URL(t)
	a, b := redisreplicas.New(client(t, url)), redisreplicas.New(client(t, url))
	key := "create:key-" + rand.Text()
	const perSecond, burst = 0.5, 10 // refills one token per 2 s: none during the test
	steps := []struct {
		c          *redisreplicas.Cluster
		ask, taken int
	}{{a, 4, 4}, {b, 4, 4}, {a, 4, 2}, {b, 1, 0}}
	for i, st := range steps {
		taken, wait, err := st.c.TakeUpTo(t.Context(), key, st.ask, perSecond, burst)
		if err != nil {
			t.Fatal(err)
		}
		if taken != st.taken {
			t.Fatalf("step %d: TakeUpTo(%d) took %d, want %d (burst %d shared)", i, st.ask, taken, st.taken, burst)
		}
		if (taken == 0) != (wait > 0) || wait > 2*time.Second {
			t.Fatalf("step %d: took %d with wait %v; want a wait of at most 2s exactly when none was taken", i, taken, wait)
		}
	}
	if wait, err := a.Take(t.Context(), key, perSecond, burst); err != nil || wait == 0 {
		t.Fatalf("Take after the bucket was emptied by TakeUpTo = %v, %v; want a wait", wait, err)
	}
}
