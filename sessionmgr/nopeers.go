package sessionmgr

import (
	"context"
	"fmt"
)

// noPeers is a single replica: nobody else. Nothing is forwarded and
// nothing taken over, so no loop runs and no request checks its owner;
// signaling connects are paced by this replica's own limiters; a draining
// replica has nowhere to send its apps, and Close ends its sessions
// (SERVER_SHUTDOWN).
type noPeers struct{ m *Manager }

func (noPeers) start() {}

// alive is never asked in practice: only a forwarded attach names another
// replica, and nothing is forwarded here.
func (noPeers) alive(context.Context, string) bool { return true }

// route: the session's actor is nowhere (its record outlived the process
// that ran it, or another Manager without a Cluster shares the store).
func (noPeers) route(_ context.Context, s Session, _ request, _ *bool) (Session, bool, error) {
	return Session{}, false, fmt.Errorf("session %s has no actor on this replica: %w", s.ID, ErrUnavailable)
}

func (noPeers) drainingJoin() error { return nil }

// forwardDetach has nobody to tell: no attachment is forwarded.
func (noPeers) forwardDetach(context.Context, string, SessionID, request) {}

func (noPeers) checkOwnerFirst() bool { return false }

func (p noPeers) pace(ctx context.Context, channel string) error {
	return p.m.pacer(channel).Wait(ctx)
}

// sendAppsAway has nowhere to send them: Close ends the sessions.
func (noPeers) sendAppsAway(context.Context, []*actor) {}

func (noPeers) closeReason() CloseReason { return CloseServerShutdown }

// joined and left: every attachment is this replica's own.
func (noPeers) joined(*Attachment) {}
func (noPeers) left(*Attachment)   {}
