//go:build idlecost

package sessionmgr_test

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/internal/redisinfo"
	"github.com/acme/viewersession/internal/redistest"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/redisreplicas"
	"github.com/acme/viewersession/sessionmgr/redisstore"
)

// TestIdleCostIndependentOfHistory measures issue 14's Acceptance 3 at the
// Manager's level: two replicas (two Managers in this process, each with
// its own client, on one private redis-server, with the Redis Cluster
// implementation) hold 1,000 joined sessions, idle; Redis's commands/s
// and this process's CPU are measured with 10,000 and then 100,000 ended
// sessions in the store. Run it alone (it is a measurement):
//
//	flock /tmp/measure.lock go test -tags idlecost -count=1 -v -run TestIdleCostIndependentOfHistory ./sessionmgr/
func TestIdleCostIndependentOfHistory(t *testing.T) {
	const (
		live   = 1000
		window = 30 * time.Second
	)
	srv := redistest.Start(t)
	admin := redisClient(t, srv.URL())
	var managers []*sessionmgr.Manager
	for _, id := range []string{"replica-1", "replica-2"} {
		rdb := redisClient(t, srv.URL())
		st := redisstore.New(rdb)
		t.Cleanup(st.Close)
		cfg := sessionmgr.DefaultConfig()
		cfg.ReplicaID = id
		cfg.DialsPerSecond = 1000
		m := sessionmgr.New(cfg, st, quietSignaler{}, &fakeIDs{}, sessionmgr.WithCluster(redisreplicas.New(rdb)), quietLogger())
		t.Cleanup(func() { _ = m.Close(context.Background()) })
		managers = append(managers, m)
	}
	ctx := t.Context()
	for i := range live {
		m := managers[i%2]
		s, err := m.Create(ctx, sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: fmt.Sprintf("cam-%d", i)}, ViewerID: "v"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Attach(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
		defer m.Detach(context.Background(), s.ID)
	}
	st := redisstore.New(redisClient(t, srv.URL()))
	t.Cleanup(st.Close)
	addEnded := func(n int) {
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Go(func() {
				for i := w; i < n; i += 16 {
					now := time.Now()
					s := sessionmgr.Session{ID: newTestID(t), Channel: sessionmgr.Channel{ARN: fmt.Sprintf("arn:ended/%d", i%1000), Name: "ended"},
						State: sessionmgr.StatePending, Owner: fmt.Sprintf("replica-%d", 1+i%2), Epoch: 1, Created: now, Updated: now,
						Expires: now.Add(time.Hour), Options: sessionmgr.DefaultOptions()}
					if _, err := st.Create(ctx, s, 1<<20); err != nil {
						t.Error(err)
						return
					}
					s.State, s.Close = sessionmgr.StateClosed, sessionmgr.CloseByBackend
					if err := st.Put(ctx, s); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	measure := func(what string) (float64, float64) {
		time.Sleep(5 * time.Second) // settle
		c0, u0 := redisCommands(t, admin), cpu()
		time.Sleep(window) // the measurement window
		c1, u1 := redisCommands(t, admin), cpu()
		cmds := float64(c1-c0) / window.Seconds()
		cpuPct := 100 * (u1 - u0).Seconds() / window.Seconds()
		t.Logf("%s: Redis %.1f commands/s, replicas' CPU %.2f%% of a core", what, cmds, cpuPct)
		return cmds, cpuPct
	}
	addEnded(10_000)
	c10, u10 := measure("1,000 live, 10,000 ended")
	addEnded(90_000)
	c100, u100 := measure("1,000 live, 100,000 ended")
	t.Logf("ratio 100,000 / 10,000 ended: commands %.2fx, CPU %.2fx", c100/c10, u100/u10)
	if c100 > 1.2*c10 {
		t.Errorf("Redis commands/s %.1f with 100,000 ended sessions, %.1f with 10,000: over 1.2x", c100, c10)
	}
}

func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// redisCommands is INFO stats' total_commands_processed.
func redisCommands(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	in, err := redisinfo.Read(t.Context(), rdb, "stats")
	if err != nil {
		t.Fatal(err)
	}
	if in.Processed < 0 {
		t.Fatal("no total_commands_processed in INFO stats")
	}
	return in.Processed
}

// cpu is this process's user+system CPU time.
func cpu() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// quietSignaler resolves any channel and opens signaling connections on
// which KVS never says anything: sessions wait for their app's offer.
type quietSignaler struct{}

func (quietSignaler) Resolve(_ context.Context, ref sessionmgr.ChannelRef) (sessionmgr.Channel, error) {
	return sessionmgr.Channel{ARN: "arn:aws:kinesisvideo:us-west-2:123456789012:channel/" + ref.Name + "/1", Name: ref.Name, MessageTTL: time.Minute}, nil
}

func (quietSignaler) IceServers(context.Context, sessionmgr.Channel, string, bool) (sessionmgr.IceServers, error) {
	return sessionmgr.IceServers{}, nil
}

func (quietSignaler) Dial(context.Context, sessionmgr.Channel, string) (sessionmgr.SignalingConn, error) {
	return &quietConn{events: make(chan *sessionmgr.SignalEvent)}, nil
}

func (quietSignaler) ValidateOffer(string) (string, error)         { return "ufrag", nil }
func (quietSignaler) ValidateCandidate(sessionmgr.Candidate) error { return nil }

type quietConn struct {
	once   sync.Once
	events chan *sessionmgr.SignalEvent
}

func (c *quietConn) SendOffer(context.Context, string) error                   { return nil }
func (c *quietConn) SendCandidate(context.Context, sessionmgr.Candidate) error { return nil }
func (c *quietConn) Events() <-chan *sessionmgr.SignalEvent                    { return c.events }
func (c *quietConn) Close() error {
	c.once.Do(func() { close(c.events) })
	return nil
}
