package webhook

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"
)

// item is one delivery to add: an event's body for one URL.
type item struct {
	url  string
	body []byte
}

// entry is a delivery taken from the queue.
type entry struct {
	id   string // the queue's id of the entry
	url  string
	body []byte
}

// queue holds deliveries until they are done. The Redis queue is shared
// by every replica; the memory queue is this process's alone.
type queue interface {
	// add appends items, atomically. With once set, it first marks once
	// (for ttl) and adds nothing, reporting false, when once was already
	// marked: a session's first video is sent once, whichever replica
	// sees it.
	add(ctx context.Context, once string, ttl time.Duration, items []item) (added bool, err error)
	// next returns up to n entries no consumer has taken yet, waiting up
	// to about a second for the first; they are this consumer's until
	// done (or until it stops touching them).
	next(ctx context.Context, n int) ([]entry, error)
	// claim returns up to n entries another consumer took and has not
	// touched for the claim idle time (it died); they are ours now.
	claim(ctx context.Context, n int) ([]entry, error)
	// touch tells the queue that entries ids are still being worked on.
	touch(ctx context.Context, ids []string) error
	// done removes a delivered (or abandoned) entry.
	done(ctx context.Context, id string) error
	// depth is the number of entries in the queue, taken ones included.
	depth(ctx context.Context) (int64, error)
}

// errQueueFull: the memory queue holds its maximum; the items were not
// added.
var errQueueFull = errors.New("webhook queue full")

// memQueue is the queue of a single replica without Redis: a bounded
// slice. Safe for concurrent use.
type memQueue struct {
	max int

	// mu guards everything that follows.
	mu      sync.Mutex
	ready   []entry
	taken   int                  // entries handed out by next, not yet done
	once    map[string]time.Time // once marks and when each expires
	lastID  int
	arrived chan struct{} // signalled (never blocking) when ready grows
}

func newMemQueue(max int) *memQueue {
	return &memQueue{max: max, once: make(map[string]time.Time), arrived: make(chan struct{}, 1)}
}

func (q *memQueue) add(_ context.Context, once string, ttl time.Duration, items []item) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.ready)+q.taken+len(items) > q.max {
		return false, errQueueFull
	}
	if once != "" {
		now := time.Now()
		if exp, ok := q.once[once]; ok && now.Before(exp) {
			return false, nil
		}
		if len(q.once) >= q.max {
			q.pruneOnceLocked(now)
		}
		q.once[once] = now.Add(ttl)
	}
	for _, it := range items {
		q.lastID++
		q.ready = append(q.ready, entry{id: strconv.Itoa(q.lastID), url: it.url, body: it.body})
	}
	select {
	case q.arrived <- struct{}{}:
	default:
	}
	return true, nil
}

// pruneOnceLocked drops the expired once marks.
func (q *memQueue) pruneOnceLocked(now time.Time) {
	for k, exp := range q.once {
		if !now.Before(exp) {
			delete(q.once, k)
		}
	}
}

func (q *memQueue) next(ctx context.Context, n int) ([]entry, error) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		q.mu.Lock()
		k := min(n, len(q.ready))
		if k > 0 {
			out := append([]entry(nil), q.ready[:k]...)
			q.ready = q.ready[k:]
			q.taken += k
			if len(q.ready) > 0 {
				select {
				case q.arrived <- struct{}{}:
				default:
				}
			}
			q.mu.Unlock()
			return out, nil
		}
		q.mu.Unlock()
		select {
		case <-q.arrived:
		case <-t.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// claim: nobody else takes from a memory queue.
func (q *memQueue) claim(context.Context, int) ([]entry, error) { return nil, nil }

func (q *memQueue) touch(context.Context, []string) error { return nil }

func (q *memQueue) done(context.Context, string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.taken--
	return nil
}

func (q *memQueue) depth(context.Context) (int64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return int64(len(q.ready) + q.taken), nil
}
