package redisstore

import "github.com/acme/viewersession/sessionmgr"

// Following reports how many timelines the store's follower follows, how
// many of those are confirmed, and whether its goroutines run.
func Following(s *Store) (n, active int, running bool) {
	n, active = s.tl.following()
	s.tl.mu.Lock()
	running = s.tl.stop != nil
	s.tl.mu.Unlock()
	return n, active, running
}

// encodeSession is encodeRecord of a copy of sess.
func (s *Store) encodeSession(sess sessionmgr.Session) (string, error) {
	return s.encodeRecord(&sess)
}
