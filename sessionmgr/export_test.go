package sessionmgr

import (
	"context"
	"time"
)

// WithWatchCheck sets how long Watch waits for events before it checks the
// session again (default watchCheck).
func WithWatchCheck(d time.Duration) Option { return func(m *Manager) { m.watchCheck = d } }

// LapseHeartbeat records a lapse of the replica's heartbeat, as the
// heartbeat loop does after a gap of half the TTL.
func LapseHeartbeat(m *Manager) { m.lapses.Add(1) }

// HeldActor is a session's actor held on to, as Manager.detach holds one
// while its call races the actor's end.
type HeldActor struct{ a *actor }

// HoldActor holds id's running actor (nil when none runs).
func HoldActor(m *Manager, id SessionID) *HeldActor {
	if a := m.actor(id); a != nil {
		return &HeldActor{a}
	}
	return nil
}

// Ended is closed when the actor has ended.
func (h *HeldActor) Ended() <-chan struct{} { return h.a.done }

// Detach sends the actor a detach of a stream, as Attachment.Detach does.
func (h *HeldActor) Detach(ctx context.Context) error {
	_, err := h.a.call(ctx, request{kind: reqDetach, att: &Attachment{m: h.a.m, id: h.a.s.ID, stream: "held"}})
	return err
}
