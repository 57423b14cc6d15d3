//go:build !unix

package ws

import "net"

// waiter is only on Unix; elsewhere Read waits in a read.
type waiter struct{}

func newWaiter(net.Conn) *waiter { return nil }

func (*waiter) wait() error { return nil }
