package thinclient

import "sync"

// queue is an unbounded FIFO whose push never blocks: pion callbacks and API
// callers hand work to a goroutine that waits on ready. Safe for concurrent
// use.
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
	q.signalLocked()
	return true
}

// pushFront puts v back at the head (a send that did not happen).
func (q *queue[T]) pushFront(v T) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.items = append([]T{v}, q.items...)
	q.signalLocked()
	return true
}

func (q *queue[T]) signalLocked() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop removes and returns the head.
func (q *queue[T]) pop() (T, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var zero T
	if len(q.items) == 0 {
		return zero, false
	}
	v := q.items[0]
	q.items[0] = zero
	q.items = q.items[1:]
	return v, true
}

// any reports whether an item satisfies f.
func (q *queue[T]) any(f func(T) bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, v := range q.items {
		if f(v) {
			return true
		}
	}
	return false
}

// drain removes and returns every item.
func (q *queue[T]) drain() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

// remove drops the items drop selects and returns them.
func (q *queue[T]) remove(drop func(T) bool) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	var kept, gone []T
	for _, v := range q.items {
		if drop(v) {
			gone = append(gone, v)
		} else {
			kept = append(kept, v)
		}
	}
	q.items = kept
	return gone
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
