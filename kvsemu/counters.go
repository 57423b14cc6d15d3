package kvsemu

import (
	"maps"
	"sync"
)

// Counters is a snapshot of what the emulator has seen since Start.
type Counters struct {
	// Calls counts control-plane calls received, by operation:
	// "CreateSignalingChannel", "DescribeSignalingChannel",
	// "GetSignalingChannelEndpoint", "DeleteSignalingChannel",
	// "GetIceServerConfig" (refused and throttled calls included).
	Calls map[string]int64 `json:"calls"`
	// Connects counts signaling connections: "VIEWER" and "MASTER" accepted,
	// "VIEWER_REFUSED" and "MASTER_REFUSED" refused at the upgrade,
	// "VIEWER_REPLACED" and "MASTER_REPLACED" closed by a newer connection.
	Connects map[string]int64 `json:"connects"`
	// Messages counts signaling messages accepted for routing, by
	// "<from>-><to>:<type>", e.g. "viewer->master:SDP_OFFER",
	// "master->viewer:SDP_ANSWER", "service->viewer:GO_AWAY",
	// "service->master:STATUS_RESPONSE".
	Messages map[string]int64 `json:"messages"`
	// Dropped counts messages not delivered, by "<from>-><to>:<type>:<why>"
	// where why is "throttled", "oversize", "invalid", "expired",
	// "overwritten" or "slow-consumer".
	Dropped map[string]int64 `json:"dropped"`
}

// counters is the live, locked form of Counters.
type counters struct {
	// mu guards c.
	mu sync.Mutex
	c  Counters
}

func newCounters() counters {
	return counters{c: Counters{
		Calls:    map[string]int64{},
		Connects: map[string]int64{},
		Messages: map[string]int64{},
		Dropped:  map[string]int64{},
	}}
}

func (c *counters) call(op string)     { c.add(func(s *Counters) { s.Calls[op]++ }) }
func (c *counters) connect(key string) { c.add(func(s *Counters) { s.Connects[key]++ }) }
func (c *counters) message(key string) { c.add(func(s *Counters) { s.Messages[key]++ }) }
func (c *counters) dropped(key string) { c.add(func(s *Counters) { s.Dropped[key]++ }) }

func (c *counters) add(f func(*Counters)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.c)
}

func (c *counters) snapshot() Counters {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Counters{
		Calls:    maps.Clone(c.c.Calls),
		Connects: maps.Clone(c.c.Connects),
		Messages: maps.Clone(c.c.Messages),
		Dropped:  maps.Clone(c.c.Dropped),
	}
}

// Counters returns a snapshot of the counters.
func (e *Emulator) Counters() Counters { return e.counters.snapshot() }
