package redisstore

import (
	"crypto/rand"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/internal/redistest"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/internal/wire"
)

// TestRollingUpdate is a rolling update: a replica before version 2 left a
// live session in Redis (its record and timeline written here as that
// code wrote them, from the v1 golden fixtures), and a Store of this code
// reads it (Get, Events), takes it over, waits on its timeline and saves
// over it. Afterwards the record is version 2 and the timeline holds both
// versions, all readable.
func TestRollingUpdate(t *testing.T) {
	t.Parallel()
	opt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	opt.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := t.Context()

	// The fixtures' session, under an id of its own (the server may be
	// shared).
	id := sessionmgr.SessionID(strings.ToLower(rand.Text()))
	fixture := func(name string) string {
		return strings.ReplaceAll(readGolden(t, name), "abcdefghijklmnopqrstuvwxyz", string(id))
	}
	want := goldenSession()
	want.ID, want.Epoch, want.Owner = id, 7, "replica-old"
	wantEvents := goldenEventList()

	// What the old createScript and appendScript left: the record's
	// fields, and one stream entry per event, field "e".
	member := listMember(want.Created, id)
	if err := rdb.HSet(ctx, recordKey(id),
		"s", fixture("session.v1.json"), "epoch", "7", "owner", "replica-old", "term", "0",
		"ch", want.Channel.ARN, "seq", strconv.FormatUint(wantEvents[len(wantEvents)-1].Seq, 10),
		"idem", "", "m", member, "exp", unixMillis(want.Expires)).Err(); err != nil {
		t.Fatal(err)
	}
	names := map[uint64]string{}
	for name, e := range goldenEvents() {
		names[e.Seq] = name
	}
	for _, e := range wantEvents {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{
			Stream: eventsKey(id), ID: strconv.FormatUint(e.Seq, 10) + "-0",
			Values: []any{"e", fixture("event-" + names[e.Seq] + ".v1.json")},
		}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{recordKey(id), eventsKey(id)} {
		rdb.Expire(ctx, k, time.Minute)
	}
	if err := rdb.ZAdd(ctx, channelListKey(want.Channel.ARN), redis.Z{Member: member}).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.ZRem(ctx, channelListKey(want.Channel.ARN), member) })

	s := New(rdb)
	defer s.Close()

	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get = %v", err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Get of a v1 record (-want +got):\n%s", d)
	}
	list, _, err := s.List(ctx, sessionmgr.ListFilter{ChannelARN: want.Channel.ARN}, 10, "")
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Errorf("List(channel) = %d sessions, %v; want the v1 session", len(list), err)
	}
	evs, err := s.Events(ctx, id, 0, 0, false)
	if err != nil {
		t.Fatalf("Events = %v", err)
	}
	if d := cmp.Diff(wantEvents, evs); d != "" {
		t.Errorf("Events of a v1 timeline (-want +got):\n%s", d)
	}

	taken, err := s.Takeover(ctx, id, "replica-new", 7)
	if err != nil {
		t.Fatalf("Takeover = %v", err)
	}
	want.Epoch, want.Owner = 8, "replica-new"
	if d := cmp.Diff(want, taken); d != "" {
		t.Errorf("Takeover of a v1 record (-want +got):\n%s", d)
	}

	// A reader waits past the v1 events; the new owner saves a turn.
	waited := make(chan []sessionmgr.Event, 1)
	go func() {
		evs, err := s.Events(ctx, id, wantEvents[len(wantEvents)-1].Seq, 0, true)
		if err != nil && ctx.Err() == nil {
			t.Errorf("waiting Events = %v", err)
		}
		waited <- evs
	}()
	next := sessionmgr.Event{Seq: 14, Time: time.Date(2026, 3, 1, 12, 2, 0, 0, time.UTC),
		Type: sessionmgr.EventStateChanged, State: sessionmgr.StateConnected, Attempt: 3}
	want.State, want.LastSeq = sessionmgr.StateConnected, 14
	if err := s.Save(ctx, want, []sessionmgr.Event{next}); err != nil {
		t.Fatalf("Save over a v1 record = %v", err)
	}
	if got := <-waited; len(got) != 1 || got[0].Seq != 14 || got[0].State != sessionmgr.StateConnected {
		t.Errorf("waiting Events = %+v; want event 14, CONNECTED", got)
	}

	raw, err := rdb.HGet(ctx, recordKey(id), "s").Result()
	if err != nil || !strings.HasPrefix(raw, `{"v":2,`) {
		t.Errorf("record after Save = %.40q, %v; want version 2", raw, err)
	}
	got, err = s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get = %v", err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Get after Save (-want +got):\n%s", d)
	}
	evs, err = s.Events(ctx, id, 0, 0, false)
	if err != nil {
		t.Fatalf("Events = %v", err)
	}
	if d := cmp.Diff(append(wantEvents, next), evs); d != "" {
		t.Errorf("Events of a v1 and v2 timeline (-want +got):\n%s", d)
	}
	if err := s.Delete(ctx, id); err != nil {
		t.Errorf("Delete = %v", err)
	}
}

// goldenEventList is goldenEvents in Seq order.
func goldenEventList() []sessionmgr.Event {
	var evs []sessionmgr.Event
	for _, e := range goldenEvents() {
		evs = append(evs, e)
	}
	slices.SortFunc(evs, func(a, b sessionmgr.Event) int { return int(a.Seq) - int(b.Seq) })
	return evs
}

// TestRollingUpdateWriteV1 is the first step of a rolling update from a
// release before version 2: a Store of this code writing version 1
// (WithWriteVersion(1)) leaves records and events that the old code reads
// (the frozen version 1 structs, strictly), and a Store writing version 2
// reads them too.
func TestRollingUpdateWriteV1(t *testing.T) {
	t.Parallel()
	opt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	opt.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := t.Context()

	old, cur := New(rdb, WithWriteVersion(1)), New(rdb)
	defer old.Close()
	defer cur.Close()
	sess := goldenSession()
	sess.ID = sessionmgr.SessionID(strings.ToLower(rand.Text()))
	sess.Channel.ARN += "-" + string(sess.ID)
	sess.State, sess.Close, sess.Failure, sess.LastSeq = sessionmgr.StateConnected, 0, nil, 0
	sess.Expires = time.Now().Add(time.Minute).Truncate(time.Millisecond).UTC()
	events := goldenEventList()
	created, err := old.Create(ctx, sess, 10, events[:2]...)
	if err != nil {
		t.Fatalf("Create = %v", err)
	}
	defer func() { _ = cur.Delete(ctx, sess.ID) }()
	sess = created
	sess.LastSeq = 5
	if err := old.Save(ctx, sess, events[2:4]); err != nil {
		t.Fatalf("Save = %v", err)
	}
	// A reader of this code waits for the v1 writer's next event (its
	// notification is version 1 too).
	waited := make(chan []sessionmgr.Event, 1)
	go func() {
		evs, err := cur.Events(ctx, sess.ID, 4, 0, true)
		if err != nil && ctx.Err() == nil {
			t.Errorf("waiting Events = %v", err)
		}
		waited <- evs
	}()
	if err := old.Append(ctx, sess.ID, sess.Epoch, events[4]); err != nil {
		t.Fatalf("Append = %v", err)
	}
	if got := <-waited; len(got) != 1 || !cmp.Equal(got[0], events[4]) {
		t.Errorf("waiting Events = %+v; want %+v", got, events[4])
	}

	raw, err := rdb.HGet(ctx, recordKey(sess.ID), "s").Result()
	if err != nil {
		t.Fatal(err)
	}
	strict(t, "the record", raw, &wire.SessionV1{})
	msgs, err := rdb.XRange(ctx, eventsKey(sess.ID), "-", "+").Result()
	if err != nil || len(msgs) != 5 {
		t.Fatalf("timeline = %d entries, %v; want 5", len(msgs), err)
	}
	for _, m := range msgs {
		strict(t, "event "+m.ID, m.Values["e"].(string), &wire.EventV1{})
	}

	got, err := cur.Get(ctx, sess.ID)
	if err != nil {
		t.Fatalf("Get = %v", err)
	}
	if d := cmp.Diff(sess, got); d != "" {
		t.Errorf("Get of what a v1 writer saved (-want +got):\n%s", d)
	}
	evs, err := cur.Events(ctx, sess.ID, 0, 0, false)
	if err != nil {
		t.Fatalf("Events = %v", err)
	}
	if d := cmp.Diff(events[:5], evs); d != "" {
		t.Errorf("Events a v1 writer appended (-want +got):\n%s", d)
	}
}
