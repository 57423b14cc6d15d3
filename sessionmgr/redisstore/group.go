package redisstore

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// group sends concurrent calls of scripts together, as one pipeline (group
// commit). A call waits for no timer: it joins the calls queued while the
// pipelines in flight run, so a lone call is one round trip as before, and
// under load many calls share a round trip, its system calls and Redis's
// read and write of the socket. Each call is still its own script on
// Redis, atomic and answered alone. No goroutine of its own: the caller
// that finds no pipeline slot free queues its call, and a caller that runs
// a pipeline then takes what was queued meanwhile.
type group struct {
	rdb     redis.UniversalClient
	timeout time.Duration // bounds each pipeline
	max     int           // pipelines in flight at once

	mu      sync.Mutex
	running int
	queued  []*groupCall
}

// groupCall is one script call and, once done is closed, its reply.
type groupCall struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
	done   chan struct{}
}

// groupBatch bounds the calls of one pipeline; groupInFlight the
// pipelines of one group in flight at once (the calls beyond wait for one
// to come back, and go in the next).
const (
	groupBatch    = 64
	groupInFlight = 4
)

func newGroup(rdb redis.UniversalClient, timeout time.Duration, inFlight int) *group {
	return &group{rdb: rdb, timeout: timeout, max: inFlight}
}

// run runs script with keys and args, alone or with others, and returns
// its reply. ctx ending returns ctx's error; the call may still run.
func (g *group) run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	c := &groupCall{script: script, keys: keys, args: args, done: make(chan struct{})}
	g.mu.Lock()
	if g.running >= g.max {
		g.queued = append(g.queued, c)
		g.mu.Unlock()
		select {
		case <-c.done:
			return c.cmd
		case <-ctx.Done():
			cmd := redis.NewCmd(ctx)
			cmd.SetErr(ctx.Err())
			return cmd
		}
	}
	g.running++
	g.mu.Unlock()
	batch := []*groupCall{c}
	for {
		g.send(batch)
		g.mu.Lock()
		n := min(len(g.queued), groupBatch)
		if n == 0 {
			g.running--
			g.mu.Unlock()
			return c.cmd
		}
		batch = append(batch[:0:0], g.queued[:n]...)
		g.queued = g.queued[n:]
		g.mu.Unlock()
	}
}

// send runs batch as one pipeline (a lone call as a plain command) and
// answers each call; a script the server lacks (NOSCRIPT) is loaded and
// its calls sent once more.
func (g *group) send(batch []*groupCall) {
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	exec := func(calls []*groupCall) {
		if len(calls) == 1 {
			c := calls[0]
			c.cmd = c.script.EvalSha(ctx, g.rdb, c.keys, c.args...)
			return
		}
		_, _ = g.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, c := range calls {
				c.cmd = c.script.EvalSha(ctx, p, c.keys, c.args...)
			}
			return nil
		}) // each command carries its own error
	}
	exec(batch)
	var again []*groupCall
	for _, c := range batch {
		if err := c.cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			again = append(again, c)
		}
	}
	if len(again) > 0 {
		loaded := map[*redis.Script]bool{}
		for _, c := range again {
			if !loaded[c.script] {
				loaded[c.script] = true
				_ = c.script.Load(ctx, g.rdb).Err() // a failure shows in the calls' replies
			}
		}
		exec(again)
	}
	for _, c := range batch {
		close(c.done)
	}
}
