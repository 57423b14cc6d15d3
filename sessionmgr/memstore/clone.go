package memstore

import (
	"bytes"
	"slices"

	"github.com/acme/viewersession/sessionmgr"
)

// The clones copy every slice and pointer reachable from a record, so the
// store and its callers never share memory. TestCloneCoversEveryReference
// fails when a type gains a reference field these do not know.

func cloneSession(s sessionmgr.Session) sessionmgr.Session {
	s.IceServers = cloneIceServers(s.IceServers)
	s.Failure = clonePtr(s.Failure)
	s.TokenHash = bytes.Clone(s.TokenHash)
	s.AppSeqsAbove = slices.Clone(s.AppSeqsAbove)
	return s
}

func cloneEvent(e sessionmgr.Event) sessionmgr.Event {
	e.Failure = clonePtr(e.Failure)
	if e.Candidate != nil {
		c := cloneCandidate(*e.Candidate)
		e.Candidate = &c
	}
	if e.Renegotiate != nil {
		r := *e.Renegotiate
		r.IceServers = cloneIceServersPtr(r.IceServers)
		e.Renegotiate = &r
	}
	e.ConnState = clonePtr(e.ConnState)
	e.Recovery = clonePtr(e.Recovery)
	e.Media = clonePtr(e.Media)
	e.IceServers = cloneIceServersPtr(e.IceServers)
	return e
}

func cloneCandidate(c sessionmgr.Candidate) sessionmgr.Candidate {
	c.SDPMLineIndex = clonePtr(c.SDPMLineIndex)
	return c
}

func cloneIceServers(s sessionmgr.IceServers) sessionmgr.IceServers {
	s.Servers = slices.Clone(s.Servers)
	for i := range s.Servers {
		s.Servers[i].URLs = slices.Clone(s.Servers[i].URLs)
	}
	return s
}

func cloneIceServersPtr(s *sessionmgr.IceServers) *sessionmgr.IceServers {
	if s == nil {
		return nil
	}
	c := cloneIceServers(*s)
	return &c
}

// clonePtr copies what p points to; for types without references.
func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
