package redisstore_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/internal/redisinfo"
	"github.com/acme/viewersession/internal/redistest"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/redisstore"
)

// BenchmarkCreateTaking is CreateSession's write on a single server (one
// script, the clientId's lease in it) from 16 callers, with a record the
// size of a real one (default options, three ICE servers) and its first
// two events, ten sessions per channel. Besides ns/op it reports the
// commands redis-server ran per create (the script and those inside it),
// redis-server's CPU per create (INFO cpu) and this process's (getrusage:
// the store, go-redis and the benchmark's own making of sessions), and
// logs INFO commandstats per create: "name calls/usec". The server is its
// own, on a free port.
//
//	go test -run '^$' -bench CreateTaking -benchtime 20000x ./sessionmgr/redisstore/
func BenchmarkCreateTaking(b *testing.B) {
	srv := redistest.Start(b)
	opt, err := redis.ParseURL(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	rdb := redis.NewClient(opt) // the server's defaults
	b.Cleanup(func() { _ = rdb.Close() })
	st := redisstore.New(rdb)
	b.Cleanup(st.Close)
	ctx := context.Background()

	var n atomic.Int64
	create := func() error {
		sess, pl, events := benchSession(int(n.Add(1)))
		_, err := st.CreateTaking(ctx, sess, 10, pl, events...)
		return err
	}
	for range 200 { // loads the script, fills the listings a little
		if err := create(); err != nil {
			b.Fatal(err)
		}
	}
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	cpu0, self0 := redisInfo(b, rdb).CPU, selfCPU()
	b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0))) // 16 callers
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := create(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	in, self1 := redisInfo(b, rdb), selfCPU()
	per := float64(b.N)
	b.ReportMetric((in.CPU-cpu0).Seconds()*1e6/per, "redis-us/op")
	b.ReportMetric((self1-self0).Seconds()*1e6/per, "client-us/op")
	stats := in.Commands
	names := make([]string, 0, len(stats))
	for name := range stats {
		names = append(names, name)
	}
	slices.Sort(names)
	var commands float64
	var line []string
	for _, name := range names {
		if name == "info" || strings.HasPrefix(name, "config") {
			continue
		}
		st := stats[name]
		commands += float64(st.Calls)
		line = append(line, fmt.Sprintf("%s %.2f/%.1fus", name, float64(st.Calls)/per, float64(st.Usec)/per))
	}
	b.ReportMetric(commands/per, "commands/op")
	if b.N > 1 {
		b.Logf("per create (n=%d): %s", b.N, strings.Join(line, ", "))
	}
}

// benchSession is the i-th session of BenchmarkCreateTaking, its
// prepared lease and first two events, as Manager.Create makes them.
func benchSession(i int) (sessionmgr.Session, sessionmgr.PreparedLease, []sessionmgr.Event) {
	name := fmt.Sprintf("bench-c%d", i/10)
	ch := sessionmgr.Channel{
		ARN:  "arn:aws:kinesisvideo:eu-west-1:123456789012:channel/" + name + "/1700000000000",
		Name: name, Region: "eu-west-1", MessageTTL: time.Minute,
	}
	now := time.Now()
	opts := sessionmgr.DefaultOptions()
	turn := func(host string) sessionmgr.IceServer {
		return sessionmgr.IceServer{
			URLs: []string{
				"turn:" + host + ".t-1.kinesisvideo.eu-west-1.amazonaws.com:443?transport=udp",
				"turns:" + host + ".t-1.kinesisvideo.eu-west-1.amazonaws.com:443?transport=tcp",
			},
			Username:   "1700000300:djE6YXJuOmF3czpraW5lc2lzdmlkZW86ZXUtd2VzdC0xOjEyMzQ1Njc4OTAxMjpjaGFubmVs",
			Credential: "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0",
		}
	}
	clientID := fmt.Sprintf("vs-bench-%d", i)
	sess := sessionmgr.Session{
		ID: newID(), Channel: ch, ViewerID: fmt.Sprintf("viewer-%d", i), ClientID: clientID,
		State: sessionmgr.StatePending, Attempt: 1, Options: opts,
		IceServers: sessionmgr.IceServers{
			Servers: []sessionmgr.IceServer{
				{URLs: []string{"stun:stun.kinesisvideo.eu-west-1.amazonaws.com:443"}},
				turn("1-2-3-4"), turn("5-6-7-8"),
			},
			Expires: now.Add(5 * time.Minute),
		},
		Created: now, Updated: now, Expires: now.Add(opts.MaxLifetime),
		TokenHash: []byte("0123456789abcdef0123456789abcdef"), Caller: "key-1",
		Owner: "replica-0123456789abcdef", Epoch: 1,
	}
	pl := sessionmgr.PreparedLease{
		Lease: sessionmgr.Lease{ClientID: clientID, Channel: ch.ARN, Token: "token-" + string(sess.ID)},
		Key:   "bench:lease:{" + ch.ARN + "}:" + clientID, TTL: time.Minute,
	}
	events := []sessionmgr.Event{
		{Seq: 1, Time: now, Type: sessionmgr.EventCreated, State: sessionmgr.StatePending,
			Message: fmt.Sprintf("session created for viewer %q on channel %s", sess.ViewerID, name)},
		{Seq: 2, Time: now, Type: sessionmgr.EventClientIDAllocated, State: sessionmgr.StatePending, Attempt: 1,
			ClientID: clientID, Message: fmt.Sprintf("clientId %s allocated (attempt 1)", clientID)},
	}
	return sess, pl, events
}

// redisInfo is INFO cpu and commandstats.
func redisInfo(b *testing.B, rdb *redis.Client) redisinfo.Info {
	b.Helper()
	in, err := redisinfo.Read(context.Background(), rdb, "cpu", "commandstats")
	if err != nil {
		b.Fatalf("INFO: %v", err)
	}
	return in
}

// selfCPU is this process's CPU so far (user + system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
