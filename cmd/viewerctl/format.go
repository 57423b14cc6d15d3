package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/viewerclient"
)

// clockLayout is how timeline and stats lines show the time.
const clockLayout = "15:04:05.000"

// noisy reports whether an event is left out of the timeline without -v:
// there are several of them per connection and they say little to a person.
func noisy(e *vspb.SessionEvent) bool {
	switch e.GetType() {
	case vspb.EventType_EVENT_TYPE_REMOTE_CANDIDATE, vspb.EventType_EVENT_TYPE_CONNECTION_STATE:
		return true
	}
	return false
}

// formatEvent is one timeline line: time, state, attempt, clientId, type
// and the event's plain-words message. It shows no payload but a camera
// candidate (-v): never the answer's SDP, never ICE servers.
func formatEvent(e *vspb.SessionEvent, loc *time.Location) string {
	clientID := e.GetClientId()
	if clientID == "" {
		clientID = "-"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-15s  attempt %d  %-20s  %s: %s", e.GetTime().AsTime().In(loc).Format(clockLayout),
		trimEnum(e.GetState().String(), "SESSION_STATE_"), e.GetAttempt(), clientID,
		trimEnum(e.GetType().String(), "EVENT_TYPE_"), e.GetMessage())
	if c := e.GetCandidate(); c != nil && c.GetCandidate() != "" {
		fmt.Fprintf(&b, " (%s)", c.GetCandidate())
	}
	if f := e.GetFailure(); f != nil {
		reason := trimEnum(f.GetReason().String(), "FAILURE_REASON_")
		if m := f.GetMessage(); m != "" && m != e.GetMessage() {
			reason += ": " + m
		}
		fmt.Fprintf(&b, " [%s]", reason)
	}
	if r := e.GetCloseReason(); r != vspb.CloseReason_CLOSE_REASON_UNSPECIFIED && r != vspb.CloseReason_CLOSE_REASON_FAILED {
		fmt.Fprintf(&b, " [%s]", trimEnum(r.String(), "CLOSE_REASON_"))
	}
	return b.String()
}

// formatStats is the once-a-second media line; prev is the previous
// snapshot, for the packet rate over the last interval.
func formatStats(now time.Time, s, prev viewerclient.Stats, interval time.Duration) string {
	rate := 0.0
	if interval > 0 {
		rate = float64(s.PacketsReceived-prev.PacketsReceived) / interval.Seconds()
	}
	line := fmt.Sprintf("%s  %-15s  packets %d (%+.0f/s)  %s  %.1f fps", now.Format(clockLayout), "media",
		s.PacketsReceived, rate, formatBytes(s.BytesReceived), s.FramesPerSecond)
	if s.LocalAddress != "" {
		line += fmt.Sprintf("  via %s (%s)", s.LocalAddress, s.LocalCandidateType)
	}
	return line
}

// summary is the last line of a successful watch: where the session first
// connected, its recoveries, and the media received.
func summary(first, last *vspb.SessionEvent, recoveries int, s viewerclient.Stats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ok: CONNECTED on attempt %d (clientId %s)", first.GetAttempt(), first.GetClientId())
	if recoveries > 0 {
		fmt.Fprintf(&b, ", recovered %d time(s), last on attempt %d (clientId %s)", recoveries, last.GetAttempt(), last.GetClientId())
	}
	fmt.Fprintf(&b, "; received %d video packets, %s", s.PacketsReceived, formatBytes(s.BytesReceived))
	return b.String()
}

// formatBytes is n bytes in B, kB or MB (powers of 1000).
func formatBytes(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1000)
	}
	return fmt.Sprintf("%.2f MB", float64(n)/1e6)
}

// trimEnum drops a proto enum value's type prefix.
func trimEnum(s, prefix string) string {
	if t, ok := strings.CutPrefix(s, prefix); ok && t != "" {
		return t
	}
	return s
}

// writeSessions prints sessions as a table, newest first as the service
// lists them; REASON says why an ended one ended.
func writeSessions(w io.Writer, list []*vspb.Session, loc *time.Location) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVIEWER\tCLIENT_ID\tSTATE\tATTEMPT\tCREATED\tREASON")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.GetName(), s.GetViewerId(), orDash(s.GetClientId()),
			trimEnum(s.GetState().String(), "SESSION_STATE_"), s.GetAttempt(),
			s.GetCreateTime().AsTime().In(loc).Format("2006-01-02 15:04:05"), sessionReason(s))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// describeFailure says in plain words why the session FAILED: the failure
// reason, the status code the service ended the stream with, and its
// message.
func describeFailure(fe *viewerclient.FailedError) string {
	st := fe.GRPCStatus()
	return fmt.Sprintf("session FAILED: %s (%s): %s", trimEnum(fe.Reason().String(), "FAILURE_REASON_"), st.Code(), st.Message())
}

// rpcError says which call failed and why, with the service's stable
// reason (google.rpc.ErrorInfo) when it gave one.
func rpcError(call string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", call, err)
	}
	reason := ""
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			reason = " [" + info.GetReason() + "]"
		}
	}
	return fmt.Errorf("%s: %s%s: %s", call, st.Code(), reason, st.Message())
}

// asFailed returns err's *viewerclient.FailedError, if it has one.
func asFailed(err error) (*viewerclient.FailedError, bool) {
	var fe *viewerclient.FailedError
	ok := errors.As(err, &fe)
	return fe, ok
}

// mergeWindow is how close (server clock) an event must follow a
// STATE_CHANGED to share its line.
const mergeWindow = 100 * time.Millisecond

// timeline prints a session's timeline with one line per state change: a
// STATE_CHANGED event is held until the next printed event; when that is
// the event the change belongs to (one of the next few sequence numbers,
// the same state, within mergeWindow) the two print as one line, the event's, ending with
// "(FROM -> TO)"; otherwise the STATE_CHANGED prints on its own.
type timeline struct {
	loc     *time.Location
	verbose bool // print noisy events too
	pending *vspb.SessionEvent
}

// add takes the next event and returns the lines to print now.
func (t *timeline) add(e *vspb.SessionEvent) []string {
	if !t.verbose && noisy(e) {
		return nil // held STATE_CHANGED stays held for its event
	}
	if e.GetType() == vspb.EventType_EVENT_TYPE_STATE_CHANGED {
		lines := t.flush()
		t.pending = e
		return lines
	}
	p := t.pending
	if p == nil {
		return []string{formatEvent(e, t.loc)}
	}
	t.pending = nil
	if e.GetState() == p.GetState() && e.GetSequence() <= p.GetSequence()+3 &&
		e.GetTime().AsTime().Sub(p.GetTime().AsTime()) <= mergeWindow {
		return []string{formatEvent(e, t.loc) + " (" + transition(p) + ")"}
	}
	return []string{formatEvent(p, t.loc), formatEvent(e, t.loc)}
}

// flush returns the held STATE_CHANGED's line, if any.
func (t *timeline) flush() []string {
	p := t.pending
	if p == nil {
		return nil
	}
	t.pending = nil
	return []string{formatEvent(p, t.loc)}
}

// transition is a STATE_CHANGED event's "FROM -> TO", from its message
// ("FROM -> TO: why"), or "-> TO" when the message has no arrow.
func transition(e *vspb.SessionEvent) string {
	if ft, _, _ := strings.Cut(e.GetMessage(), ":"); strings.Contains(ft, " -> ") {
		return ft
	}
	return "-> " + trimEnum(e.GetState().String(), "SESSION_STATE_")
}

// sessionReason is why an ended session ended: the failure reason of a
// FAILED one, the close reason of a CLOSED one; "-" for a live one.
func sessionReason(s *vspb.Session) string {
	if f := s.GetFailure(); f != nil && f.GetReason() != vspb.FailureReason_FAILURE_REASON_UNSPECIFIED {
		return trimEnum(f.GetReason().String(), "FAILURE_REASON_")
	}
	if r := s.GetCloseReason(); r != vspb.CloseReason_CLOSE_REASON_UNSPECIFIED {
		return trimEnum(r.String(), "CLOSE_REASON_")
	}
	return "-"
}

// refused reports whether err says that nothing listens at the address.
func refused(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection refused")
}

// withHint adds "is the server running at ADDR?" to an error that says the
// connection was refused.
func withHint(addr string, err error) error {
	if refused(err) {
		return fmt.Errorf("%w; is the server running at %s?", err, addr)
	}
	return err
}
