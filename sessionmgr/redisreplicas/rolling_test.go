package redisreplicas

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/internal/redistest"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/internal/wire/wiretest"
)

// TestRollingUpdateServe: a replica before version 2 forwards requests
// (the v1 golden fixtures, pushed onto the inbox as it pushed them) to a
// replica of this code, which handles each as the request it was and
// answers on the reply key, in version 2.
func TestRollingUpdateServe(t *testing.T) {
	t.Parallel()
	opt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	c := New(rdb)
	replica := "new-" + rand.Text()

	got := make(chan sessionmgr.Forwarded, 1)
	reply := goldenReplies()["session"]
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() {
		served <- c.Serve(ctx, replica, func(_ context.Context, f sessionmgr.Forwarded) sessionmgr.ForwardReply {
			got <- f
			return reply
		})
	}()
	defer func() {
		cancel()
		<-served
	}()

	deadline := time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano)
	for name, want := range goldenForwarded() {
		replyKey := "vs:v1:{reply:" + rand.Text() + "}"
		body := string(wiretest.Read(t, "forwarded-"+name+".v1.json"))
		body = strings.Replace(body, "vs:v1:{reply:ABCDEFGHIJKLMNOPQRSTUVWXYZ}", replyKey, 1)
		body = strings.Replace(body, `"deadline":"2026-03-01T12:00:05.25Z"`, `"deadline":"`+deadline+`"`, 1)
		if err := rdb.LPush(t.Context(), c.inboxKey(replica), body).Err(); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want.Req, <-got); d != "" {
			t.Errorf("v1 request %s handled as (-want +got):\n%s", name, d)
		}
		res, err := rdb.BLPop(t.Context(), 10*time.Second, replyKey).Result()
		if err != nil {
			t.Fatalf("reply to v1 request %s: %v", name, err)
		}
		if !strings.HasPrefix(res[1], `{"v":2,`) {
			t.Errorf("reply to v1 request %s = %.40q; want version 2", name, res[1])
		}
		rep, err := decodeReply([]byte(res[1]))
		if err != nil {
			t.Fatalf("decode reply to %s: %v", name, err)
		}
		if d := cmp.Diff(reply, rep); d != "" {
			t.Errorf("reply to v1 request %s (-want +got):\n%s", name, d)
		}
	}
}

// TestRollingUpdateForward: a replica of this code forwards to an owner
// before version 2, which answers in version 1 (the golden fixtures); the
// answer reads as the reply it was.
func TestRollingUpdateForward(t *testing.T) {
	t.Parallel()
	opt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	c := New(rdb)
	owner := "old-" + rand.Text()

	for name, want := range goldenReplies() {
		answer := wiretest.Read(t, "reply-"+name+".v1.json")
		old := make(chan error, 1)
		go func() { // the old owner: takes the request, answers in v1
			res, err := rdb.BRPop(t.Context(), 10*time.Second, c.inboxKey(owner)).Result()
			if err != nil {
				old <- err
				return
			}
			var env struct {
				ReplyKey string `json:"replyKey"`
			}
			if err := json.Unmarshal([]byte(res[1]), &env); err != nil {
				old <- err
				return
			}
			old <- rdb.LPush(t.Context(), env.ReplyKey, answer).Err()
		}()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		rep, err := c.Forward(ctx, owner, sessionmgr.Forwarded{Session: "abcdefghijklmnopqrstuvwxyz", Kind: "close", From: "new"})
		cancel()
		if oerr := <-old; oerr != nil {
			t.Fatalf("old owner: %v", oerr)
		}
		if err != nil {
			t.Fatalf("Forward answered %s in v1: %v", name, err)
		}
		if d := cmp.Diff(want, rep); d != "" {
			t.Errorf("v1 reply %s read as (-want +got):\n%s", name, d)
		}
	}
}
