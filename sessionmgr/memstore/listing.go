package memstore

import (
	"slices"
	"time"

	"github.com/acme/viewersession/sessionmgr"
)

// ListScanBudget is how many sessions one List call examines at most
// while a filter (a state, or a viewer within a channel) skips them: a
// page may then come back short, with a cursor to go on from. It bounds
// how long List holds the store's lock, whatever the store holds.
const ListScanBudget = 1024

// listKey is a session's place in the listings: List's order, reversed.
type listKey struct {
	created time.Time
	id      sessionmgr.SessionID
}

func (k listKey) before(o listKey) bool {
	if !k.created.Equal(o.created) {
		return k.created.Before(o.created)
	}
	return k.id < o.id
}

// listing holds entries oldest first, so that a new session is usually
// appended; List walks it from the end.
type listing []*entry

// search returns the index of the first entry not before k.
func (l listing) search(k listKey) int {
	i, _ := slices.BinarySearchFunc(l, k, func(e *entry, k listKey) int {
		switch {
		case e.key.before(k):
			return -1
		case k.before(e.key):
			return 1
		}
		return 0
	})
	return i
}

func (l listing) insert(e *entry) listing {
	return slices.Insert(l, l.search(e.key), e)
}

func (l listing) remove(e *entry) listing {
	i := l.search(e.key)
	if i < len(l) && l[i] == e {
		l = slices.Delete(l, i, i+1)
	}
	return l
}

// listingsLocked returns the smallest listing that holds every session f
// may match.
func (s *Store) listingLocked(f sessionmgr.ListFilter) listing {
	switch {
	case f.ViewerID != "":
		return s.byViewer[f.ViewerID]
	case f.ChannelARN != "":
		return s.byChannel[f.ChannelARN]
	}
	return s.all
}

// listLocked adds e to the listings.
func (s *Store) listLocked(e *entry) {
	s.all = s.all.insert(e)
	s.byChannel[e.s.Channel.ARN] = s.byChannel[e.s.Channel.ARN].insert(e)
	s.byViewer[e.s.ViewerID] = s.byViewer[e.s.ViewerID].insert(e)
}

// unlistLocked removes e from the listings.
func (s *Store) unlistLocked(e *entry) {
	s.all = s.all.remove(e)
	unlist(s.byChannel, e.s.Channel.ARN, e)
	unlist(s.byViewer, e.s.ViewerID, e)
}

func unlist(m map[string]listing, k string, e *entry) {
	if l := m[k].remove(e); len(l) > 0 {
		m[k] = l
	} else {
		delete(m, k)
	}
}
