package sessionmgr_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/clientid"
	"github.com/acme/viewersession/internal/redistest"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/bind"
	"github.com/acme/viewersession/sessionmgr/memstore"
)

// renewLog collects the "renew clientId lease" warnings by session id.
type renewLog struct {
	mu   sync.Mutex
	lost map[string]int
	c    chan string // each warning's session id
}

func (l *renewLog) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		var rec struct {
			Msg       string `json:"msg"`
			SessionID string `json:"session_id"`
		}
		if json.Unmarshal(line, &rec) != nil || rec.Msg != "renew clientId lease" {
			continue
		}
		l.mu.Lock()
		l.lost[rec.SessionID]++
		l.mu.Unlock()
		select {
		case l.c <- rec.SessionID:
		default:
		}
	}
	return len(p), nil
}

func (l *renewLog) reports() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int, len(l.lost))
	for k, v := range l.lost {
		out[k] = v
	}
	return out
}

// TestLeasesRenewedTogether: a Manager on the Redis allocator renews the
// clientId leases of all its sessions together, in pipelines of a script
// per channel (no script sent alone: none per session), every LeaseRenew;
// a lease taken from
// its session (its key overwritten) is still reported by that session,
// and by no other.
func TestLeasesRenewedTogether(t *testing.T) {
	opts, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	opts.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() }) // after the manager's Close, which releases
	const n, channels = 50, 10
	// Each pipeline that carries a script per channel is announced on full.
	full := make(chan int, 1)
	counter := &redistest.ScriptCounter{OnPipeline: func(scripts int) {
		if scripts >= channels {
			select {
			case full <- scripts:
			default:
			}
		}
	}}
	rdb.AddHook(counter)
	idCfg := clientid.DefaultConfig()
	idCfg.KeyPrefix = "test:" + strings.ToLower(rand.Text())
	log := &renewLog{lost: map[string]int{}, c: make(chan string, 1)}
	cfg := sessionmgr.DefaultConfig()
	cfg.DialsPerSecond = 1000
	cfg.LeaseRenew = 50 * time.Millisecond
	m := sessionmgr.New(cfg, memstore.New(), &fakeCamera{}, bind.NewClientIDs(clientid.NewRedis(rdb, idCfg)),
		sessionmgr.WithLogger(slog.New(slog.NewJSONHandler(log, nil))))
	t.Cleanup(func() {
		if err := m.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	sessions := make([]sessionmgr.Session, n)
	for i := range sessions {
		s, err := m.Create(ctx, sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: fmt.Sprint("cam", i%channels)}, ViewerID: fmt.Sprint("v", i)})
		if err != nil {
			t.Fatalf("Create %d: %v", i, err)
		}
		sessions[i] = s
	}
	waitBatch := func(what string) {
		t.Helper()
		select {
		case got := <-full:
			if got != channels {
				t.Fatalf("%s: a renewal pipeline of %d scripts, want one per channel (%d) for all %d leases", what, got, channels, n)
			}
		case <-ctx.Done():
			t.Fatalf("%s: no pipeline renewed the leases of all %d channels", what, channels)
		}
	}
	// Past the first batch (which may load the script), count 3 intervals.
	waitBatch("first interval")
	counter.Singles.Store(0)
	counter.Pipelines.Store(0)
	for i := range 3 {
		waitBatch(fmt.Sprint("interval ", i+2))
	}
	singles, batches := counter.Singles.Load(), counter.Pipelines.Load()
	t.Logf("3 intervals renewing %d leases: %d pipelines, %d scripts sent alone", n, batches, singles)
	if singles != 0 || batches < 2 || batches > 4 {
		t.Errorf("3 intervals renewing %d leases: %d pipelines and %d scripts sent alone; want 2 to 4 pipelines, none alone", n, batches, singles)
	}
	if r := log.reports(); len(r) != 0 {
		t.Fatalf("renewal failures reported while every lease was held: %v", r)
	}

	// Another owner takes session 7's id (as after its lease lapsed).
	lost := sessions[7]
	key := idCfg.KeyPrefix + ":cid:{" + lost.Channel.ARN + "}:" + lost.ClientID
	if err := rdb.Set(ctx, key, "BBBBBBBBBBBBBBBBBBBBBBBBBB", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-log.c:
		if id != string(lost.ID) {
			t.Fatalf("a lost lease was reported by session %s, want %s", id, lost.ID)
		}
	case <-ctx.Done():
		t.Fatalf("the lost lease of session %s was never reported", lost.ID)
	}
	waitBatch("after the loss") // one more round: still only session 7
	waitBatch("after the loss")
	r := log.reports()
	if r[string(lost.ID)] == 0 || len(r) != 1 {
		t.Errorf("renewal failures reported by session = %v; want only %s", r, lost.ID)
	}
}
