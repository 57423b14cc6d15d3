package clientid_test

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/clientid"
	"github.com/acme/viewersession/internal/redistest"
)

// Benchmarks against real Redis (redistest.URL: REDIS_URL or a private
// server). Every operation uses a fresh key, so each acquire is
// uncontended: its first candidate is free. Compare:
//
//   - Acquire with BareSetNX: one round trip each (EVALSHA of the acquire
//     script with all candidate keys vs a plain SET NX PX).
//   - AcquireRelease with BareSetNXThenSetPX: two round trips each.
//
// BenchmarkRatio interleaves the two sides of each pair in one loop, so
// machine load drifts hit both alike, and reports their rate ratio.

const benchChannel = "arn:aws:kinesisvideo:us-east-1:111122223333:channel/bench-cam/1700000000000"

func benchSetup(b *testing.B) (*redis.Client, *clientid.Redis, string) {
	b.Helper()
	rdb := newRedisClient(b, redistest.URL(b), 4)
	cfg := clientid.Config{LeaseTTL: time.Second, DefaultCooldown: time.Second, KeyPrefix: testPrefix()}
	a := clientid.NewRedis(rdb, cfg)
	// Warm up: load the script, open the connection.
	if _, err := a.Acquire(b.Context(), clientid.Request{Channel: benchChannel, Base: "warm"}); err != nil {
		b.Fatal(err)
	}
	// The bare key has the same shape and length as an acquire's first key.
	return rdb, a, cfg.KeyPrefix + ":cid:{" + benchChannel + "}:bare-"
}

const benchTTL = 2 * time.Second // LeaseTTL + cooldown, as the acquire script sets

func BenchmarkBareSetNX(b *testing.B) {
	rdb, _, key := benchSetup(b)
	ctx := b.Context()
	for i := 0; b.Loop(); i++ {
		if err := rdb.SetNX(ctx, key+strconv.Itoa(i), "TOKENTOKENTOKENTOKENTOKENT", benchTTL).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBareSetNXThenSetPX(b *testing.B) {
	rdb, _, key := benchSetup(b)
	ctx := b.Context()
	for i := 0; b.Loop(); i++ {
		k := key + strconv.Itoa(i)
		if err := rdb.SetNX(ctx, k, "TOKENTOKENTOKENTOKENTOKENT", benchTTL).Err(); err != nil {
			b.Fatal(err)
		}
		if err := rdb.Set(ctx, k, "released", time.Second).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAcquire(b *testing.B) {
	_, a, _ := benchSetup(b)
	ctx := b.Context()
	for i := 0; b.Loop(); i++ {
		if _, err := a.Acquire(ctx, clientid.Request{Channel: benchChannel, Base: "v" + strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	_, a, _ := benchSetup(b)
	ctx := b.Context()
	for i := 0; b.Loop(); i++ {
		l, err := a.Acquire(ctx, clientid.Request{Channel: benchChannel, Base: "v" + strconv.Itoa(i)})
		if err != nil {
			b.Fatal(err)
		}
		if err := a.Release(ctx, l); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRatio times both sides of each comparison in one loop, in
// alternating order, and reports "rate-ratio": the allocator's rate divided
// by the bare commands' rate (the target is >= 0.8).
func BenchmarkRatio(b *testing.B) {
	b.Run("Acquire-vs-SetNX", func(b *testing.B) {
		rdb, a, key := benchSetup(b)
		ctx := b.Context()
		var bare, alloc time.Duration
		for i := 0; b.Loop(); i++ {
			s := strconv.Itoa(i)
			setNX := func() {
				t := time.Now()
				if err := rdb.SetNX(ctx, key+s, "TOKENTOKENTOKENTOKENTOKENT", benchTTL).Err(); err != nil {
					b.Fatal(err)
				}
				bare += time.Since(t)
			}
			acquire := func() {
				t := time.Now()
				if _, err := a.Acquire(ctx, clientid.Request{Channel: benchChannel, Base: "v" + s}); err != nil {
					b.Fatal(err)
				}
				alloc += time.Since(t)
			}
			if i%2 == 0 {
				setNX()
				acquire()
			} else {
				acquire()
				setNX()
			}
		}
		reportRatio(b, bare, alloc)
	})
	b.Run("AcquireRelease-vs-SetNXSetPX", func(b *testing.B) {
		rdb, a, key := benchSetup(b)
		ctx := b.Context()
		var bare, alloc time.Duration
		for i := 0; b.Loop(); i++ {
			s := strconv.Itoa(i)
			setNXSetPX := func() {
				t := time.Now()
				if err := rdb.SetNX(ctx, key+s, "TOKENTOKENTOKENTOKENTOKENT", benchTTL).Err(); err != nil {
					b.Fatal(err)
				}
				if err := rdb.Set(ctx, key+s, "released", time.Second).Err(); err != nil {
					b.Fatal(err)
				}
				bare += time.Since(t)
			}
			acquireRelease := func() {
				t := time.Now()
				l, err := a.Acquire(ctx, clientid.Request{Channel: benchChannel, Base: "v" + s})
				if err != nil {
					b.Fatal(err)
				}
				if err := a.Release(ctx, l); err != nil {
					b.Fatal(err)
				}
				alloc += time.Since(t)
			}
			if i%2 == 0 {
				setNXSetPX()
				acquireRelease()
			} else {
				acquireRelease()
				setNXSetPX()
			}
		}
		reportRatio(b, bare, alloc)
	})
}

// reportRatio reports each side's mean time and the allocator's rate as a
// fraction of the bare commands' rate.
func reportRatio(b *testing.B, bare, alloc time.Duration) {
	n := float64(b.N)
	b.ReportMetric(float64(bare.Nanoseconds())/n, "bare-ns/op")
	b.ReportMetric(float64(alloc.Nanoseconds())/n, "alloc-ns/op")
	b.ReportMetric(float64(bare)/float64(alloc), "rate-ratio")
}

// BenchmarkRenewMany renews 1,000 live leases in one call, 10 on each of
// 100 channels (KVS's limit of viewers per channel), as a replica renews its
// sessions' leases every LeaseRenew; it reports the client's allocation per
// lease ("B/lease"), which every idle session costs the server's heap each
// interval.
func BenchmarkRenewMany(b *testing.B) {
	_, a, _ := benchSetup(b)
	ctx := b.Context()
	leases := make([]clientid.Lease, 1000)
	for i := range leases {
		l, err := a.Acquire(ctx, clientid.Request{Channel: benchChannel + "-" + strconv.Itoa(i%100), Base: "renew-" + strconv.Itoa(i)})
		if err != nil {
			b.Fatal(err)
		}
		leases[i] = l
	}
	b.ReportAllocs()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for b.Loop() {
		for i, err := range a.RenewMany(ctx, leases) {
			if err != nil {
				b.Fatalf("lease %d: %v", i, err)
			}
		}
	}
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/float64(b.N)/float64(len(leases)), "B/lease")
}
