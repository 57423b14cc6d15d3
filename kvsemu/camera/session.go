package camera

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/pion/webrtc/v4"
)

// session is one viewer's peer connection. The event loop owns it; pion's
// OnICECandidate callback touches only the trickle gate under mu.
type session struct {
	id   string
	pc   *webrtc.PeerConnection
	log  *slog.Logger
	send func(frame []byte) bool
	// terminated is set by pion's state callback once the connection is
	// dead for the mode (see isDead); the next cleanup pass drops s.
	terminated atomic.Bool

	// mu guards the trickle gate below.
	mu sync.Mutex
	// answered is false while an answer is being made; local candidates
	// gathered meanwhile wait in early so the viewer gets the answer first.
	answered bool
	early    []webrtc.ICECandidateInit
}

// onCandidate is pion's OnICECandidate callback: it queues the candidate
// for the viewer, or holds it until the answer is queued. It never blocks.
func (s *session) onCandidate(c *webrtc.ICECandidate) {
	if c == nil {
		return // end of gathering; KVS has no end-of-candidates frame
	}
	init := c.ToJSON()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.answered {
		s.early = append(s.early, init)
		return
	}
	s.send(encodeCandidate(s.id, init))
}

// holdCandidates closes the trickle gate before a new answer is made.
func (s *session) holdCandidates() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answered = false
}

// releaseCandidates opens the trickle gate after the answer was queued and
// sends the candidates held meanwhile.
func (s *session) releaseCandidates() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answered = true
	for _, c := range s.early {
		s.send(encodeCandidate(s.id, c))
	}
	s.early = nil
}

// close closes the peer connection and waits for pion's handlers to end.
func (s *session) close() {
	if err := s.pc.GracefulClose(); err != nil && !errors.Is(err, webrtc.ErrConnectionClosed) {
		s.log.Warn("close peer connection", "err", err)
	}
}
