package clientid_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/acme/viewersession/clientid"
	"github.com/acme/viewersession/internal/redistest"
)

// testRenewMany: RenewMany answers each lease as Renew would (a live one
// renewed, a released, expired, stolen or forged one ErrNotOwner, in the
// leases' order), and the renewed ones outlive their first TTL.
func testRenewMany(t *testing.T, h harness) {
	a := h.newAlloc(t, suiteConfig())
	ctx := t.Context()
	live1 := mustAcquire(t, a, clientid.Request{Channel: chanA, Base: "many"})
	live2 := mustAcquire(t, a, clientid.Request{Channel: chanB, Base: "many"})
	released := mustAcquire(t, a, clientid.Request{Channel: chanA, Base: "gone"})
	if err := a.Release(ctx, released); err != nil {
		t.Fatalf("Release = %v", err)
	}
	expired := mustAcquire(t, a, clientid.Request{Channel: chanB, Base: "lapsed"})
	forged, empty := live1, live1
	forged.Token = "AAAAAAAAAAAAAAAAAAAAAAAAAA"
	empty.Token = ""
	leases := []clientid.Lease{live1, released, forged, live2, empty, expired}
	wantOK := []bool{true, false, false, true, false, false}

	// Two thirds of a TTL, a batch renewal, two thirds again: past the
	// first TTL, which only the renewed leases outlive. expired is
	// renewed in neither batch but the last, after its TTL passed.
	time.Sleep(suiteTTL * 2 / 3)
	if errs := a.RenewMany(ctx, []clientid.Lease{live1, live2}); errs[0] != nil || errs[1] != nil {
		t.Fatalf("RenewMany(live leases) = %v; want no errors", errs)
	}
	time.Sleep(suiteTTL * 2 / 3)
	errs := a.RenewMany(ctx, leases)
	if len(errs) != len(leases) {
		t.Fatalf("RenewMany of %d leases returned %d answers", len(leases), len(errs))
	}
	for i, err := range errs {
		if wantOK[i] && err != nil {
			t.Errorf("RenewMany: lease %d (%s) = %v; want nil", i, leases[i].ID, err)
		}
		if !wantOK[i] && !errors.Is(err, clientid.ErrNotOwner) {
			t.Errorf("RenewMany: lease %d (%s) = %v; want ErrNotOwner", i, leases[i].ID, err)
		}
	}
	// The renewed leases still hold their ids.
	for _, l := range []clientid.Lease{live1, live2} {
		if l2 := mustAcquire(t, a, clientid.Request{Channel: l.Channel, Base: "many"}); l2.ID == l.ID {
			t.Errorf("Acquire of renewed lease %s's id = %q; want another id", l.ID, l2.ID)
		}
	}
	// An empty batch is no call at all.
	if errs := a.RenewMany(ctx, nil); len(errs) != 0 {
		t.Errorf("RenewMany(nil) = %v; want no answers", errs)
	}
}

// TestRedisRenewManyRoundTrips: renewing n leases with RenewMany costs one
// round trip per chunk of 1,000 (a pipeline), not one per lease, and one
// script call per channel, not per lease, on a real server; only the first
// batch after the script cache was emptied takes a second round trip. Every
// lease's key got its TTL pushed out.
func TestRedisRenewManyRoundTrips(t *testing.T) {
	rdb := newRedisClient(t, redistest.URL(t), 4)
	cfg := clientid.Config{LeaseTTL: 30 * time.Second, DefaultCooldown: time.Minute}
	cfg.KeyPrefix = testPrefix()
	a := clientid.NewRedis(rdb, cfg)
	ctx := t.Context()
	const n = 2500 // three chunks, of 50 channels with 50 leases each
	leases := make([]clientid.Lease, n)
	for i := range leases {
		ch := fmt.Sprintf("arn:aws:kinesisvideo:us-west-2:111122223333:channel/c%d/1", i%50)
		leases[i] = mustAcquire(t, a, clientid.Request{Channel: ch, Base: fmt.Sprint("v", i)})
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	var rt redistest.ScriptCounter
	rdb.AddHook(&rt)
	reset := func() (singles, pipelines, piped int64) {
		return rt.Singles.Swap(0), rt.Pipelines.Swap(0), rt.Piped.Swap(0)
	}
	check := func(name string, minPipelines, maxPipelines, wantScripts int64) {
		t.Helper()
		errs := a.RenewMany(ctx, leases)
		for i, err := range errs {
			if err != nil {
				t.Fatalf("%s: RenewMany: lease %d = %v; want nil", name, i, err)
			}
		}
		singles, pipelines, piped := reset()
		t.Logf("%s: %d leases renewed in %d pipelines (%d scripts) and %d single scripts", name, n, pipelines, piped, singles)
		if singles != 0 || pipelines < minPipelines || pipelines > maxPipelines || piped != wantScripts {
			t.Errorf("%s: RenewMany of %d leases = %d pipelines (%d scripts) and %d single scripts; want %d to %d pipelines of %d scripts, no single one",
				name, n, pipelines, piped, singles, minPipelines, maxPipelines, wantScripts)
		}
	}
	// EVALSHA, then EVAL, for the first chunk's 20 channels (EVAL caches it).
	check("script not cached", 4, 4, 50+20)
	for i := range 3 {
		check(fmt.Sprint("interval ", i+1), 3, 3, 50)
	}
	// Each key now lives LeaseTTL+cooldown again, from the last renewal.
	for _, i := range []int{0, n / 2, n - 1} {
		key := cfg.KeyPrefix + ":cid:{" + leases[i].Channel + "}:" + string(leases[i].ID)
		ttl, err := rdb.PTTL(ctx, key).Result()
		if err != nil || ttl < 80*time.Second {
			t.Errorf("PTTL %s = %v, %v; want close to 90s", key, ttl, err)
		}
	}
}
