package redisstore

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/internal/redistest"
	"github.com/acme/viewersession/sessionmgr"
)

// TestTTLs reads the keys' TTLs after each kind of write: a live record
// lives until its Expires plus the retention, a terminal one for the
// retention from its first terminal Put, and the timeline always expires
// with its record, even when it is created after the record ended.
func TestTTLs(t *testing.T) {
	t.Parallel()
	opt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	opt.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	const retention = time.Hour
	st := New(rdb, WithRetention(retention))
	ctx := t.Context()

	pttl := func(key string) time.Duration {
		t.Helper()
		d, err := rdb.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatalf("PTTL %s = %v", key, err)
		}
		return d
	}
	// within checks that got is want, give or take a few seconds.
	within := func(what string, got, want time.Duration) {
		t.Helper()
		if got > want || got < want-5*time.Second {
			t.Errorf("PTTL(%s) = %v, want about %v", what, got, want)
		}
	}
	create := func(s sessionmgr.Session) {
		t.Helper()
		if _, err := st.Create(ctx, s, 10); err != nil {
			t.Fatalf("Create = %v", err)
		}
	}
	appendEvent := func(s sessionmgr.Session, seq uint64) {
		t.Helper()
		if err := st.Append(ctx, s.ID, s.Epoch, sessionmgr.Event{Seq: seq}); err != nil {
			t.Fatalf("Append(seq %d) = %v", seq, err)
		}
	}
	put := func(s sessionmgr.Session) {
		t.Helper()
		if err := st.Put(ctx, s); err != nil {
			t.Fatalf("Put(%v) = %v", s.State, err)
		}
	}

	s := session()
	create(s)
	within("live record", pttl(recordKey(s.ID)), 2*time.Hour+retention)
	appendEvent(s, 1)
	within("live timeline", pttl(eventsKey(s.ID)), 2*time.Hour+retention)
	s.Expires = s.Expires.Add(time.Hour)
	put(s)
	within("live record, Expires moved", pttl(recordKey(s.ID)), 3*time.Hour+retention)
	within("live timeline, Expires moved", pttl(eventsKey(s.ID)), 3*time.Hour+retention)
	s.State = sessionmgr.StateClosed
	put(s)
	within("ended record", pttl(recordKey(s.ID)), retention)
	within("ended timeline", pttl(eventsKey(s.ID)), retention)

	// An ended session's first event: its timeline still expires.
	quiet := session()
	create(quiet)
	quiet.State = sessionmgr.StateFailed
	put(quiet)
	appendEvent(quiet, 1)
	within("timeline appended after the end", pttl(eventsKey(quiet.ID)), retention)

	// Without Expires a live session lives until it ends.
	forever := session()
	forever.Expires = time.Time{}
	create(forever)
	appendEvent(forever, 1)
	if got := pttl(recordKey(forever.ID)); got != -1 {
		t.Errorf("PTTL(live record without Expires) = %v, want -1 (none)", got)
	}
	if got := pttl(eventsKey(forever.ID)); got != -1 {
		t.Errorf("PTTL(its timeline) = %v, want -1 (none)", got)
	}
}

func session() sessionmgr.Session {
	now := time.Now()
	id := sessionmgr.SessionID("ttl" + digest(now.String())[:20])
	return sessionmgr.Session{
		ID:      id,
		Channel: sessionmgr.Channel{ARN: "arn:aws:kinesisvideo:us-west-2:123456789012:channel/ttl-" + string(id) + "/1"},
		State:   sessionmgr.StatePending,
		Created: now,
		Expires: now.Add(2 * time.Hour),
		Epoch:   1,
	}
}
