package clientid_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/acme/viewersession/clientid"
)

// allocator is the interface sessionmgr consumes; both implementations
// satisfy it.
type allocator interface {
	Acquire(ctx context.Context, req clientid.Request) (clientid.Lease, error)
	Renew(ctx context.Context, l clientid.Lease) error
	RenewMany(ctx context.Context, leases []clientid.Lease) []error
	Release(ctx context.Context, l clientid.Lease) error
	Return(ctx context.Context, l clientid.Lease) error
}

var (
	_ allocator = (*clientid.Memory)(nil)
	_ allocator = (*clientid.Redis)(nil)
)

// harness runs the conformance suite against one implementation.
type harness struct {
	// newAlloc returns a fresh allocator with cfg and opts that no other
	// test shares (for Redis: a key prefix of its own).
	newAlloc func(t *testing.T, cfg clientid.Config, opts ...clientid.Option) allocator
	// run runs f as the subtest name: in a synctest bubble (fake time) for
	// Memory, in parallel on real time for Redis.
	run func(t *testing.T, name string, f func(t *testing.T))
	// poll is how often waitFree asks whether an id is free again; an id
	// freed early by less than that may go unnoticed.
	poll time.Duration
	// slack is how late after its cooldown an id may become free: the poll
	// interval plus round trips. It loosens only the liveness check ("free
	// right after"); the safety check ("not free before") has none.
	slack time.Duration
}

// The suite's short durations: real Redis TTLs run on them.
const (
	suiteTTL      = 300 * time.Millisecond
	suiteCooldown = 500 * time.Millisecond
	pollDeadline  = 10 * time.Second
)

const (
	chanA = "arn:aws:kinesisvideo:us-west-2:111122223333:channel/front-door/1700000000001"
	chanB = "arn:aws:kinesisvideo:us-west-2:111122223333:channel/back-yard/1700000000002"
)

func suiteConfig() clientid.Config {
	return clientid.Config{LeaseTTL: suiteTTL, DefaultCooldown: suiteCooldown, MaxSuffix: 3}
}

var randomIDRE = regexp.MustCompile(`^[a-z0-9]{20}$`)

// runConformance is the one suite both allocators must pass.
func runConformance(t *testing.T, h harness) {
	h.run(t, "UniqueAmongLiveLeases", func(t *testing.T) { testUnique(t, h) })
	h.run(t, "RandomWithoutBase", func(t *testing.T) { testRandom(t, h) })
	h.run(t, "SanitizesBase", func(t *testing.T) { testSanitizesBase(t, h) })
	h.run(t, "InvalidRequest", func(t *testing.T) { testInvalidRequest(t, h) })
	h.run(t, "Exhausted", func(t *testing.T) { testExhausted(t, h) })
	h.run(t, "ContextDone", func(t *testing.T) { testContextDone(t, h) })
	h.run(t, "ReuseAfterCooldown", func(t *testing.T) { testReuseAfterCooldown(t, h, 0, suiteCooldown) })
	h.run(t, "ReuseAfterMessageTTL", func(t *testing.T) { testReuseAfterCooldown(t, h, 800*time.Millisecond, 800*time.Millisecond) })
	h.run(t, "ReturnFreesAtOnce", func(t *testing.T) { testReturn(t, h) })
	h.run(t, "RenewExtends", func(t *testing.T) { testRenewExtends(t, h) })
	h.run(t, "RenewManyAsRenewEach", func(t *testing.T) { testRenewMany(t, h) })
	h.run(t, "StaleOwnerRefused", func(t *testing.T) { testStaleOwner(t, h) })
	h.run(t, "ExpiredOwnerRefused", func(t *testing.T) { testExpiredOwner(t, h) })
	h.run(t, "CrashFreesAfterTTLAndCooldown", func(t *testing.T) { testCrash(t, h) })
}

func mustAcquire(t *testing.T, a allocator, req clientid.Request) clientid.Lease {
	t.Helper()
	l, err := a.Acquire(t.Context(), req)
	if err != nil {
		t.Fatalf("Acquire(%+v) = %v; want a lease", req, err)
	}
	if _, perr := clientid.Parse(string(l.ID)); perr != nil {
		t.Fatalf("Acquire(%+v) = id %q: %v", req, l.ID, perr)
	}
	if l.Channel != req.Channel || l.Token == "" {
		t.Fatalf("Acquire(%+v) = %+v; want channel %q and a token", req, l, req.Channel)
	}
	return l
}

func testUnique(t *testing.T, h harness) {
	a := h.newAlloc(t, suiteConfig())
	req := clientid.Request{Channel: chanA, Base: "cam-viewer"}
	var got []clientid.ID
	tokens := map[string]bool{}
	for range 6 {
		l := mustAcquire(t, a, req)
		got = append(got, l.ID)
		if tokens[l.Token] {
			t.Fatalf("Acquire returned token %q twice", l.Token)
		}
		tokens[l.Token] = true
		if l.Cooldown != suiteCooldown {
			t.Errorf("Acquire(%+v).Cooldown = %v; want %v", req, l.Cooldown, suiteCooldown)
		}
	}
	want := []string{"cam-viewer", "cam-viewer-2", "cam-viewer-3"}
	for i, w := range want {
		if string(got[i]) != w {
			t.Errorf("lease %d = %q; want %q (candidates in order)", i+1, got[i], w)
		}
	}
	seen := map[clientid.ID]bool{}
	for i, id := range got {
		if seen[id] {
			t.Errorf("lease %d = %q; already leased (all %q)", i+1, id, got)
		}
		seen[id] = true
		if i >= len(want) {
			suffix, ok := strings.CutPrefix(string(id), "cam-viewer-")
			if !ok || !randomIDRE.MatchString(suffix) {
				t.Errorf("lease %d = %q; want cam-viewer-<20 random [a-z0-9]> after MaxSuffix", i+1, id)
			}
		}
	}
	// Uniqueness is per channel: another channel starts again at the base.
	if l := mustAcquire(t, a, clientid.Request{Channel: chanB, Base: "cam-viewer"}); l.ID != "cam-viewer" {
		t.Errorf("Acquire on another channel = %q; want %q", l.ID, "cam-viewer")
	}
}

func testRandom(t *testing.T, h harness) {
	a := h.newAlloc(t, suiteConfig())
	seen := map[clientid.ID]bool{}
	for range 50 {
		l := mustAcquire(t, a, clientid.Request{Channel: chanA})
		if !randomIDRE.MatchString(string(l.ID)) || seen[l.ID] {
			t.Fatalf("Acquire with no base = %q; want a fresh 20-character [a-z0-9] id", l.ID)
		}
		seen[l.ID] = true
	}
}

func testSanitizesBase(t *testing.T, h harness) {
	a := h.newAlloc(t, suiteConfig())
	long := strings.Repeat("v", 256)
	tests := []struct {
		give string
		want []string
	}{
		{give: "AROAEXAMPLE:alice smith", want: []string{"AROAEXAMPLE_alice_smith", "AROAEXAMPLE_alice_smith-2"}},
		{give: "AWS_cam", want: []string{"x-AWS_cam", "x-AWS_cam-2"}},
		{give: long, want: []string{long, long[:254] + "-2", long[:254] + "-3"}},
	}
	for _, tt := range tests {
		for i, want := range tt.want {
			l := mustAcquire(t, a, clientid.Request{Channel: chanA, Base: tt.give})
			if string(l.ID) != want {
				t.Errorf("Acquire #%d with base %.40q = %.60q; want %.60q", i+1, tt.give, l.ID, want)
			}
		}
	}
	// The random fallback of a full-length base still fits 256 bytes.
	l := mustAcquire(t, a, clientid.Request{Channel: chanA, Base: long})
	if len(l.ID) != clientid.MaxLen || !randomIDRE.MatchString(string(l.ID[len(l.ID)-20:])) || l.ID[len(l.ID)-21] != '-' {
		t.Errorf("random fallback of a 256-byte base = %q (%d bytes); want a cut base, '-', 20 random", l.ID, len(l.ID))
	}
}

func testInvalidRequest(t *testing.T, h harness) {
	a := h.newAlloc(t, suiteConfig())
	for _, ch := range []string{"", "channel/{evil}"} {
		l, err := a.Acquire(t.Context(), clientid.Request{Channel: ch, Base: "x"})
		if !errors.Is(err, clientid.ErrInvalid) || l.ID != "" {
			t.Errorf("Acquire(channel %q) = %+v, %v; want no lease, ErrInvalid", ch, l, err)
		}
	}
}

// zeros is a random source that always yields the same id.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func testExhausted(t *testing.T, h harness) {
	cfg := suiteConfig()
	cfg.MaxSuffix = 1
	a := h.newAlloc(t, cfg, clientid.WithRandom(zeros{}))
	tests := []struct {
		base string
		want []string // then ErrExhausted
	}{
		{base: "x", want: []string{"x", "x-aaaaaaaaaaaaaaaaaaaa"}},
		{base: "", want: []string{"aaaaaaaaaaaaaaaaaaaa"}},
	}
	for _, tt := range tests {
		req := clientid.Request{Channel: chanA, Base: tt.base}
		for _, want := range tt.want {
			if l := mustAcquire(t, a, req); string(l.ID) != want {
				t.Fatalf("Acquire(base %q) = %q; want %q", tt.base, l.ID, want)
			}
		}
		l, err := a.Acquire(t.Context(), req)
		if !errors.Is(err, clientid.ErrExhausted) || l.ID != "" || l.Token != "" {
			t.Errorf("Acquire(base %q) with every candidate leased = %+v, %v; want no lease, ErrExhausted", tt.base, l, err)
		}
	}
}

func testContextDone(t *testing.T, h harness) {
	a := h.newAlloc(t, suiteConfig())
	live := mustAcquire(t, a, clientid.Request{Channel: chanA, Base: "x"})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if l, err := a.Acquire(ctx, clientid.Request{Channel: chanA, Base: "y"}); !errors.Is(err, context.Canceled) || errors.Is(err, clientid.ErrUnavailable) || l.ID != "" {
		t.Errorf("Acquire(canceled ctx) = %+v, %v; want no lease, context.Canceled (not ErrUnavailable)", l, err)
	}
	if err := a.Renew(ctx, live); !errors.Is(err, context.Canceled) {
		t.Errorf("Renew(canceled ctx) = %v; want context.Canceled", err)
	}
	if err := a.Release(ctx, live); !errors.Is(err, context.Canceled) {
		t.Errorf("Release(canceled ctx) = %v; want context.Canceled", err)
	}
	if err := a.Release(t.Context(), live); err != nil {
		t.Errorf("Release after canceled calls = %v; want nil (they changed nothing)", err)
	}
}

// freed is what waitFree saw.
type freed struct {
	call, ret time.Time      // when the Acquire that got the id started and returned
	refused   int            // polls that got another id before it
	lease     clientid.Lease // the lease that got it
}

// waitFree polls Acquire with base want until it returns want itself.
func waitFree(t *testing.T, h harness, a allocator, channel string, want clientid.ID) freed {
	t.Helper()
	req := clientid.Request{Channel: channel, Base: string(want)}
	deadline := time.Now().Add(pollDeadline)
	var f freed
	for {
		f.call = time.Now()
		l := mustAcquire(t, a, req)
		f.ret = time.Now()
		if l.ID == want {
			f.lease = l
			return f
		}
		f.refused++
		if f.ret.After(deadline) {
			t.Fatalf("%s not free after %v of polling", want, pollDeadline)
		}
		time.Sleep(h.poll) // polling Redis's clock (or the bubble's fake one)
	}
}

// checkFreedAt checks that an id became free no earlier than notBefore
// (exact: a correct store never frees early) and no later than notAfter
// plus slack (the poll interval and round trips).
func checkFreedAt(t *testing.T, h harness, what string, f freed, notBefore, notAfter time.Time) {
	t.Helper()
	if f.ret.Before(notBefore) {
		t.Errorf("%s: id free %v before it may be", what, notBefore.Sub(f.ret))
	}
	if late := f.call.Sub(notAfter); late > h.slack {
		t.Errorf("%s: id free %v after it should be; want within %v", what, late, h.slack)
	}
	if f.refused == 0 {
		t.Errorf("%s: the id was never refused; want refusals until it is free", what)
	}
}

func testReuseAfterCooldown(t *testing.T, h harness, messageTTL, wantCooldown time.Duration) {
	a := h.newAlloc(t, suiteConfig())
	req := clientid.Request{Channel: chanA, Base: "door", MessageTTL: messageTTL}
	l := mustAcquire(t, a, req)
	if l.Cooldown != wantCooldown {
		t.Fatalf("Acquire(MessageTTL %v).Cooldown = %v; want max(%v, MessageTTL) = %v", messageTTL, l.Cooldown, suiteCooldown, wantCooldown)
	}
	relCall := time.Now()
	if err := a.Release(t.Context(), l); err != nil {
		t.Fatalf("Release = %v; want nil", err)
	}
	relRet := time.Now()
	// Other ids of the channel are unaffected: the next candidate is free.
	if l2 := mustAcquire(t, a, req); l2.ID != "door-2" {
		t.Errorf("Acquire during door's cooldown = %q; want door-2", l2.ID)
	}
	f := waitFree(t, h, a, chanA, l.ID)
	checkFreedAt(t, h, "after Release", f, relCall.Add(wantCooldown), relRet.Add(wantCooldown))
}

func testRenewExtends(t *testing.T, h harness) {
	a := h.newAlloc(t, suiteConfig())
	l := mustAcquire(t, a, clientid.Request{Channel: chanA, Base: "renewed"})
	var lastRenewCall, lastRenewRet time.Time
	for range 6 { // 6 x TTL/3: the lease outlives its first TTL twice over
		time.Sleep(suiteTTL / 3) // holding the lease, as a session would
		lastRenewCall = time.Now()
		if err := a.Renew(t.Context(), l); err != nil {
			t.Fatalf("Renew after %v = %v; want nil", time.Since(lastRenewCall), err)
		}
		lastRenewRet = time.Now()
	}
	// Still held: the allocator hands out the next candidate.
	if l2 := mustAcquire(t, a, clientid.Request{Channel: chanA, Base: "renewed"}); l2.ID == l.ID {
		t.Fatalf("Acquire of a renewed lease's id = %q; want another id", l2.ID)
	}
	// Renew moved the crash expiry too: free only at last renew + TTL + cooldown.
	f := waitFree(t, h, a, chanA, l.ID)
	checkFreedAt(t, h, "after the last Renew", f,
		lastRenewCall.Add(suiteTTL+suiteCooldown), lastRenewRet.Add(suiteTTL+suiteCooldown))
}

func testStaleOwner(t *testing.T, h harness) {
	a := h.newAlloc(t, suiteConfig())
	ctx := t.Context()
	live := mustAcquire(t, a, clientid.Request{Channel: chanA, Base: "held"})
	forged, empty, otherChan := live, live, live
	forged.Token = "AAAAAAAAAAAAAAAAAAAAAAAAAA"
	empty.Token = ""
	otherChan.Channel = chanB
	for _, tt := range []struct {
		name string
		give clientid.Lease
	}{{"forged token", forged}, {"empty token", empty}, {"other channel", otherChan}} {
		if err := a.Renew(ctx, tt.give); !errors.Is(err, clientid.ErrNotOwner) {
			t.Errorf("Renew(%s) = %v; want ErrNotOwner", tt.name, err)
		}
		if err := a.Release(ctx, tt.give); !errors.Is(err, clientid.ErrNotOwner) {
			t.Errorf("Release(%s) = %v; want ErrNotOwner", tt.name, err)
		}
	}
	// The real owner was not disturbed by any of that.
	if err := a.Renew(ctx, live); err != nil {
		t.Fatalf("Renew(owner) = %v; want nil", err)
	}
	if err := a.Release(ctx, live); err != nil {
		t.Fatalf("Release(owner) = %v; want nil", err)
	}
	// Released: the old lease owns nothing any more.
	if err := a.Release(ctx, live); !errors.Is(err, clientid.ErrNotOwner) {
		t.Errorf("second Release = %v; want ErrNotOwner", err)
	}
	if err := a.Renew(ctx, live); !errors.Is(err, clientid.ErrNotOwner) {
		t.Errorf("Renew after Release = %v; want ErrNotOwner", err)
	}
	// Once the id is someone else's, the old lease cannot touch it.
	next := waitFree(t, h, a, chanA, live.ID).lease
	checkSuperseded(t, a, live, next)
}

// checkSuperseded checks that the stale lease old cannot renew or release
// the id that next now holds, and that next still can.
func checkSuperseded(t *testing.T, a allocator, old, next clientid.Lease) {
	t.Helper()
	ctx := t.Context()
	if err := a.Renew(ctx, old); !errors.Is(err, clientid.ErrNotOwner) {
		t.Errorf("Renew(stale lease of a re-leased id) = %v; want ErrNotOwner", err)
	}
	if err := a.Release(ctx, old); !errors.Is(err, clientid.ErrNotOwner) {
		t.Errorf("Release(stale lease of a re-leased id) = %v; want ErrNotOwner", err)
	}
	if err := a.Renew(ctx, next); err != nil {
		t.Errorf("Renew(new owner) after the stale owner's attempts = %v; want nil", err)
	}
	if err := a.Release(ctx, next); err != nil {
		t.Errorf("Release(new owner) after the stale owner's attempts = %v; want nil", err)
	}
}

func testExpiredOwner(t *testing.T, h harness) {
	a := h.newAlloc(t, suiteConfig())
	ctx := t.Context()
	old := mustAcquire(t, a, clientid.Request{Channel: chanA, Base: "lapsed"})
	time.Sleep(suiteTTL + 50*time.Millisecond) // the owner stalls past its lease
	if err := a.Renew(ctx, old); !errors.Is(err, clientid.ErrNotOwner) {
		t.Errorf("Renew after LeaseTTL = %v; want ErrNotOwner (expired into cooldown)", err)
	}
	if err := a.Release(ctx, old); !errors.Is(err, clientid.ErrNotOwner) {
		t.Errorf("Release after LeaseTTL = %v; want ErrNotOwner (expired into cooldown)", err)
	}
	// Expired means cooling down, not free.
	if l := mustAcquire(t, a, clientid.Request{Channel: chanA, Base: "lapsed"}); l.ID == old.ID {
		t.Fatalf("Acquire right after the lease expired = %q; want another id (cooldown)", l.ID)
	}
	// Someone else gets it after the cooldown; the stale owner stays refused
	// and cannot disturb the new one.
	next := waitFree(t, h, a, chanA, old.ID).lease
	checkSuperseded(t, a, old, next)
}

func testCrash(t *testing.T, h harness) {
	a := h.newAlloc(t, suiteConfig())
	call := time.Now()
	l := mustAcquire(t, a, clientid.Request{Channel: chanA, Base: "crashed"})
	ret := time.Now()
	// Never renewed, never released: the owner died.
	f := waitFree(t, h, a, chanA, l.ID)
	checkFreedAt(t, h, "after a crash", f, call.Add(suiteTTL+suiteCooldown), ret.Add(suiteTTL+suiteCooldown))
}

// testReturn: a returned lease (its id never reached KVS) is free at once,
// with no cooldown; only its owner may return it, once.
func testReturn(t *testing.T, h harness) {
	a := h.newAlloc(t, suiteConfig())
	req := clientid.Request{Channel: chanA, Base: "giveback"}
	l := mustAcquire(t, a, req)
	stale := l
	stale.Token = "not-the-owner"
	if err := a.Return(t.Context(), stale); !errors.Is(err, clientid.ErrNotOwner) {
		t.Fatalf("Return by a stranger = %v; want ErrNotOwner", err)
	}
	if err := a.Return(t.Context(), l); err != nil {
		t.Fatalf("Return = %v; want nil", err)
	}
	again := mustAcquire(t, a, req)
	if again.ID != l.ID {
		t.Errorf("Acquire right after Return = %s; want the returned %s (no cooldown)", again.ID, l.ID)
	}
	if err := a.Return(t.Context(), l); !errors.Is(err, clientid.ErrNotOwner) {
		t.Errorf("Return of a lease returned and taken again = %v; want ErrNotOwner", err)
	}
	// A released id, by contrast, cools down.
	if err := a.Release(t.Context(), again); err != nil {
		t.Fatal(err)
	}
	if next := mustAcquire(t, a, req); next.ID == again.ID {
		t.Errorf("Acquire right after Release = %s; want another id (the released one cools down)", next.ID)
	}
}
