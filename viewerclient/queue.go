package viewerclient

import "sync"

// queue is an unbounded FIFO whose push never blocks: pion callbacks, the
// network watcher and API callers hand work to Run's goroutine, which
// waits on ready. Safe for concurrent use.
type queue[T any] struct {
	ready chan struct{} // holds a token while items may be waiting

	// mu guards the fields below.
	mu     sync.Mutex
	items  []T
	closed bool
}

func newQueue[T any]() *queue[T] { return &queue[T]{ready: make(chan struct{}, 1)} }

// push appends v and reports whether the queue took it (false once closed).
func (q *queue[T]) push(v T) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.items = append(q.items, v)
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

// drain removes and returns every item.
func (q *queue[T]) drain() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

// close refuses further pushes and returns what was still queued.
func (q *queue[T]) close() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	items := q.items
	q.items = nil
	return items
}
