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
