package sessionmgr

import (
	"context"
	"crypto/rand"
	"slices"
	"sync"
)

// An Attachment is one app stream attached to a session (Connect's join,
// or the app's WatchSession). The session counts its streams by their
// attachment ids: with none left the resume grace runs. Detach must be
// called when the stream ends, whatever Join returned: it is idempotent,
// and harmless for an attach that never landed, so a join cancelled
// mid-flight (the actor took it, the caller had already given up) cannot
// leave the session attached for ever.
type Attachment struct {
	m  *Manager
	id SessionID
	// stream names the attachment in the actor's set.
	stream string
	// mu guards owner, set when the attach was forwarded to another
	// replica (the owner), which then holds the attachment, and detached,
	// set when Detach began.
	mu       sync.Mutex
	owner    string
	detached bool
	once     sync.Once
}

// maxGoneStreams bounds the ids an actor remembers as detached, so that a
// detach overtaking its own attach (a forwarded pair racing through
// another replica's inbox) still cancels it.
const maxGoneStreams = 64

// Join attaches an app stream to the session: the first attach starts
// signaling, a later one resumes. It returns the session with fresh ICE
// servers and the attachment, which the caller must Detach when the stream
// ends, also when Join failed. On a replica that does not own the session,
// the join is forwarded to the owner while the owner lives; the session is
// taken over only when the owner is gone (or drains).
func (m *Manager) Join(ctx context.Context, id SessionID) (Session, *Attachment, error) {
	att := &Attachment{m: m, id: id, stream: rand.Text()}
	s, err := m.send(ctx, id, request{kind: reqAttach, att: att})
	if err == nil {
		m.peers.joined(att)
	}
	return s, att, err
}

// Detach ends the attachment (see Attachment). It never fails: a session
// that ended, moved or is unreachable has nothing to detach, and a
// forwarded attachment whose replica cannot be told is dropped by its
// owner once this replica stops heartbeating.
func (att *Attachment) Detach(ctx context.Context) {
	att.once.Do(func() { att.m.detach(ctx, att) })
}

func (att *Attachment) setOwner(owner string) {
	att.mu.Lock()
	att.owner = owner
	att.mu.Unlock()
}

// state is the replica that holds the attachment ("" for this one) and
// whether Detach began.
func (att *Attachment) state() (owner string, detached bool) {
	att.mu.Lock()
	defer att.mu.Unlock()
	return att.owner, att.detached
}

func (m *Manager) detach(ctx context.Context, att *Attachment) {
	att.mu.Lock()
	att.detached = true
	att.mu.Unlock()
	m.peers.left(att)
	m.detachFrom(ctx, att)
}

// detachFrom tells whoever holds att (this replica's actor, or the owner
// it was forwarded to) that its stream ended.
func (m *Manager) detachFrom(ctx context.Context, att *Attachment) {
	r := request{kind: reqDetach, att: att}
	if a := m.actor(att.id); a != nil {
		_, _ = a.call(ctx, r)
	}
	if owner, _ := att.state(); owner != "" && owner != m.cfg.ReplicaID {
		// A forwarded attachment: the owner holds it.
		m.peers.forwardDetach(ctx, owner, att.id, r)
	}
}

// Attach is Join for callers that keep no attachment: on error nothing is
// attached; after success, Detach(ctx, id) detaches the oldest attachment
// made this way.
func (m *Manager) Attach(ctx context.Context, id SessionID) (Session, error) {
	s, att, err := m.Join(ctx, id)
	if err != nil {
		att.Detach(context.WithoutCancel(ctx))
		return s, err
	}
	m.mu.Lock()
	m.legacy[id] = append(m.legacy[id], att)
	m.mu.Unlock()
	return s, nil
}

// Detach detaches one attachment Attach made on the session.
func (m *Manager) Detach(ctx context.Context, id SessionID) {
	m.mu.Lock()
	list := m.legacy[id]
	var att *Attachment
	if len(list) > 0 {
		att = list[0]
		if len(list) == 1 {
			delete(m.legacy, id)
		} else {
			m.legacy[id] = list[1:]
		}
	}
	m.mu.Unlock()
	if att != nil {
		att.Detach(ctx)
	}
}

// streamSet is what an actor knows of its app streams: the attached ones
// (by attachment id, with the replica each is on, "" for this one) and the
// ids recently detached. The attached are a slice, not a map: a session
// has one or a few (service.Limits.StreamsPerSession, 8 by default, per
// replica), and a map of one entry costs about 0.3 KiB per session.
type streamSet struct {
	on   []attached
	gone []string
}

// attached is one attached stream and the replica it is on.
type attached struct{ stream, replica string }

// add attaches stream; false when it was detached already (the detach
// overtook the attach).
func (s *streamSet) add(stream, replica string) bool {
	if slices.Contains(s.gone, stream) {
		return false
	}
	if i := s.index(stream); i >= 0 {
		s.on[i].replica = replica
		return true
	}
	s.on = append(s.on, attached{stream, replica})
	return true
}

// remove detaches stream; false when it was not attached.
func (s *streamSet) remove(stream string) bool {
	if i := s.index(stream); i >= 0 {
		s.on = slices.Delete(s.on, i, i+1)
		return true
	}
	if len(s.gone) == maxGoneStreams {
		s.gone = s.gone[1:]
	}
	s.gone = append(s.gone, stream)
	return false
}

func (s *streamSet) len() int { return len(s.on) }

// index is stream's place in on, -1 when it is not attached.
func (s *streamSet) index(stream string) int {
	return slices.IndexFunc(s.on, func(a attached) bool { return a.stream == stream })
}

// replicas are the other replicas streams are attached from.
func (s *streamSet) replicas() []string {
	var out []string
	for _, a := range s.on {
		if a.replica != "" && !slices.Contains(out, a.replica) {
			out = append(out, a.replica)
		}
	}
	return out
}

// dropReplica detaches every stream of replica; how many there were.
func (s *streamSet) dropReplica(replica string) int {
	n := len(s.on)
	s.on = slices.DeleteFunc(s.on, func(a attached) bool { return a.replica == replica })
	return n - len(s.on)
}

// dropDeadStreams detaches the streams of replicas that stopped
// heartbeating: their detach will never come.
func (a *actor) dropDeadStreams() {
	if a.fenced || a.s.Terminal() {
		return
	}
	dropped := 0
	for _, r := range a.streams.replicas() {
		ctx, cancel := context.WithTimeout(a.ctx, a.m.cfg.StoreTimeout)
		alive := a.m.peers.alive(ctx, r)
		cancel()
		if !alive {
			dropped += a.streams.dropReplica(r)
		}
	}
	if dropped > 0 {
		a.logger().Info("app streams of a stopped replica detached", "streams", dropped)
		a.afterDetach()
	}
}
