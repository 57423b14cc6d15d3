//go:build unix

package ws

import (
	"errors"
	"net"
	"syscall"
)

// waiter parks a reader until its socket is readable, without a read in
// flight: the wait is in the runtime's poller, right under Conn.Read, so
// the parked goroutine's stack is shallow.
type waiter struct {
	raw  syscall.RawConn
	peek func(fd uintptr) bool
}

// newWaiter returns the waiter of nc's socket (under its TLS layer, if any),
// or nil when nc is not a socket with a file descriptor.
func newWaiter(nc net.Conn) *waiter {
	if u, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = u.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return &waiter{raw: raw, peek: readable}
}

// readable reports whether fd has bytes to read, or an error or EOF to
// report (a read would not block).
func readable(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR)
}

// wait returns when the socket is readable (or closed).
func (w *waiter) wait() error { return w.raw.Read(w.peek) }
