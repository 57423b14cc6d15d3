package redisstore

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/acme/viewersession/sessionmgr"
)

// TestNotifyVersions feeds the follower notifications of both wire
// versions, as replicas of two releases publish them during a rolling
// update: each is taken in sequence, and its readers decode both.
func TestNotifyVersions(t *testing.T) {
	const id = sessionmgr.SessionID("abcdefghijklmnopqrstuvwxyz")
	fl := newFollower(nil, time.Second)
	ch := timelineChannel(id)
	f := &follow{id: id, channel: ch, wake: make(chan struct{})}
	fl.follows[ch] = f

	evs := goldenEventList()
	names := map[uint64]string{}
	for name, e := range goldenEvents() {
		names[e.Seq] = name
	}
	for i, e := range evs[:4] {
		version := []string{"v1", "v2"}[i%2]
		fl.notify(ch, readGolden(t, "event-"+names[e.Seq]+"."+version+".json"))
	}
	if len(f.recent) != 4 {
		t.Fatalf("follower kept %d of 4 notified events", len(f.recent))
	}
	got, err := decodeNotified(id, 0, f.recent)
	if err != nil {
		t.Fatalf("decodeNotified = %v", err)
	}
	if d := cmp.Diff(evs[:4], got); d != "" {
		t.Errorf("notified events of v1 and v2 (-want +got):\n%s", d)
	}
}

// notifiedSeq reads the seq of every golden event of both versions (v2's
// from its head, v1's by parsing), and refuses what is not an event.
func TestNotifiedSeq(t *testing.T) {
	for name, e := range goldenEvents() {
		for _, v := range []string{"v1", "v2"} {
			if seq, ok := notifiedSeq(readGolden(t, "event-"+name+"."+v+".json")); !ok || seq != e.Seq {
				t.Errorf("%s.%s: notifiedSeq = %d, %v; want %d", name, v, seq, ok, e.Seq)
			}
		}
	}
	for payload, want := range map[string]uint64{`{"v":2,"seq":7}`: 7, `{"seq":9,"v":2}`: 9, `{"Seq":11}`: 11} {
		if seq, ok := notifiedSeq(payload); !ok || seq != want {
			t.Errorf("notifiedSeq(%s) = %d, %v; want %d", payload, seq, ok, want)
		}
	}
	for _, bad := range []string{"not json", `{"v":2,"seq":x,"type":"a"}`} {
		if _, ok := notifiedSeq(bad); ok {
			t.Errorf("notifiedSeq accepted %s, which is not an event", bad)
		}
	}
}
