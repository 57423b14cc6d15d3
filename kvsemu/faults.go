package kvsemu

import (
	"fmt"
	"slices"
)

// throttleOps are the operations Throttle accepts.
func throttleOps() []string {
	return []string{
		OpCreateSignalingChannel, OpDescribeSignalingChannel, OpGetSignalingChannelEndpoint,
		OpDeleteSignalingChannel, OpGetIceServerConfig, OpConnectAsViewer, OpConnectAsMaster,
	}
}

// Throttle makes the next n calls of op fail with
// ClientLimitExceededException (HTTP 400; for ConnectAsViewer and
// ConnectAsMaster at the WebSocket upgrade). n <= 0 clears it. op is one of
// the Op constants; other values are ignored.
func (e *Emulator) Throttle(op string, n int) {
	if !slices.Contains(throttleOps(), op) {
		e.log.Warn("kvsemu: throttle of unknown operation ignored", "op", op)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if n <= 0 {
		delete(e.throttles, op)
		return
	}
	e.throttles[op] = n
}

// takeThrottle consumes one injected failure of op.
func (e *Emulator) takeThrottle(op string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.throttles[op] <= 0 {
		return false
	}
	e.throttles[op]--
	return true
}

// clearThrottles removes every injected throttle.
func (e *Emulator) clearThrottles() {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.throttles)
}

// liveConn returns the live connection of the master (clientID "") or of a
// viewer.
func (e *Emulator) liveConn(channelARN, clientID string) (*conn, error) {
	ch, ok := e.channel(channelARN)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, channelARN)
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	c := ch.master
	if clientID != "" {
		c = ch.viewers[clientID]
	}
	if c == nil {
		who := "master"
		if clientID != "" {
			who = "viewer " + clientID
		}
		return nil, fmt.Errorf("%w: %s on %s", ErrNotConnected, who, ch.name)
	}
	return c, nil
}

// SendGoAway sends GO_AWAY to the master (clientID "") or a viewer and
// closes its connection Limits.GoAwayBefore later (or at its maximum
// duration, if sooner).
func (e *Emulator) SendGoAway(channelARN, clientID string) error {
	c, err := e.liveConn(channelARN, clientID)
	if err != nil {
		return err
	}
	e.sendService(c, typeGoAway)
	select {
	case c.goAway <- struct{}{}:
	default:
	}
	return nil
}

// SendReconnectICEServer sends RECONNECT_ICE_SERVER to the master
// (clientID "") or a viewer.
func (e *Emulator) SendReconnectICEServer(channelARN, clientID string) error {
	c, err := e.liveConn(channelARN, clientID)
	if err != nil {
		return err
	}
	e.sendService(c, typeReconnectICE)
	return nil
}

// DropViewer closes a viewer's WebSocket abruptly (no close frame), as a
// network failure would.
func (e *Emulator) DropViewer(channelARN, clientID string) error {
	if clientID == "" {
		return fmt.Errorf("%w: DropViewer needs a client id", ErrInvalidArgument)
	}
	c, err := e.liveConn(channelARN, clientID)
	if err != nil {
		return err
	}
	c.stop(stopDropped)
	return nil
}
