// Package leaselog records clientId leases as the allocators' users see them
// and checks a whole history for two ids in use at once (overlap) and for an
// id handed out again before its cooldown ended (early reuse). The
// concurrency and many-process tests of package clientid use it.
//
// # What is recorded, and why no tolerance is needed
//
// Each lease is known by four client-side clock readings (wall clock, which
// is also the clock Redis expires keys by, so readings of different
// processes and of the server compare):
//
//   - Start: when Acquire returned. The server granted the lease earlier.
//   - Valid: when the last successful Acquire or Renew was called. The
//     server started the lease's TTL later than that.
//   - End: when Release was called (zero if it never was, e.g. the process
//     was killed). The server released it later than that, if at all.
//   - TTL and Cooldown, as configured for the lease.
//
// The holder uses the id from Start until min(End, Valid+TTL): the lease
// contract says to stop at Valid+TTL without a Renew. Another lease of the
// id may start no earlier than FreeAt = min(End, Valid+TTL) + Cooldown.
//
// Every reading errs on the safe side of what the server did: Start is
// after the grant, Valid and End are before the renew and release took
// effect, and Redis keeps a key strictly longer than its PX (it stores
// floor(now in ms)+PX and expires when the ms clock has passed that). So a
// correct allocator always satisfies next.Start >= prev.FreeAt exactly as
// recorded, and the checker compares with no slack: a tolerance would only
// hide real violations up to its size, and none is needed to avoid false
// ones. Renews are recorded only after they succeed, so a killed process's
// last Renew (call in flight, or record not yet written) may be missing:
// then the server holds the id longer than the log says, the check is
// weaker than the server's promise by that one renewal, and a correct
// server still passes. A Release is recorded before it is called, because
// a release shortens the hold: a missing one could make a correct server
// look wrong. (A wall-clock step during a run would break the premise of
// comparable clocks; test machines don't step.)
//
// For a Release whose outcome is unknown (the process died during the
// call), min(End, Valid+TTL) is still right: if the release took effect the
// id was free no earlier than End+Cooldown, and if it did not the lease
// expired at Valid+TTL and rested for its cooldown after that.
package leaselog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// Lease is what a log knows of one lease. See the package comment for the
// meaning of each time.
type Lease struct {
	Name     string // unique in the log, for reports
	Channel  string
	ID       string
	Start    time.Time
	Valid    time.Time
	End      time.Time // zero: never released
	TTL      time.Duration
	Cooldown time.Duration
}

// HeldUntil is when the holder stops using the id: at Release, or when the
// lease expires without a Renew, whichever comes first.
func (l Lease) HeldUntil() time.Time {
	held := l.Valid.Add(l.TTL)
	if !l.End.IsZero() && l.End.Before(held) {
		held = l.End
	}
	return held
}

// FreeAt is the earliest time another lease of the same id may start.
func (l Lease) FreeAt() time.Time { return l.HeldUntil().Add(l.Cooldown) }

// Violation is one lease that started too early after another of the same
// (channel, id).
type Violation struct {
	Prev, Next Lease
	// By is how much too early Next started.
	By time.Duration
}

func (v Violation) String() string {
	return fmt.Sprintf("%s in %s: %s started %v too early after %s (start %s, held until %s, free at %s)",
		v.Next.ID, v.Next.Channel, v.Next.Name, v.By, v.Prev.Name,
		v.Prev.Start.Format(time.StampMicro), v.Prev.HeldUntil().Format(time.StampMicro),
		v.Prev.FreeAt().Format(time.StampMicro))
}

// Report is the result of Check.
type Report struct {
	Leases      int // leases checked
	IDs         int // distinct (channel, id) pairs
	Reuses      int // leases of an id that had been leased before
	CrashReuses int // reuses right after a lease that was never released
	Unreleased  int // leases never released
	Overlaps    []Violation
	EarlyReuses []Violation
}

func (r Report) String() string {
	return fmt.Sprintf("%d leases of %d ids, %d reuses (%d after a lease never released), %d never released: %d overlaps, %d early reuses",
		r.Leases, r.IDs, r.Reuses, r.CrashReuses, r.Unreleased, len(r.Overlaps), len(r.EarlyReuses))
}

// Check examines every lease of every (channel, id): an overlap is a lease
// that starts while an earlier one is held ([Start, HeldUntil] intersect);
// an early reuse is a lease that starts before an earlier one's FreeAt.
func Check(leases []Lease) Report {
	type key struct{ channel, id string }
	byID := make(map[key][]Lease)
	var r Report
	for _, l := range leases {
		k := key{l.Channel, l.ID}
		byID[k] = append(byID[k], l)
		if l.End.IsZero() {
			r.Unreleased++
		}
	}
	r.Leases, r.IDs = len(leases), len(byID)
	for _, ls := range byID {
		sort.Slice(ls, func(i, j int) bool { return ls[i].Start.Before(ls[j].Start) })
		held, free := ls[0], ls[0] // the earlier leases held longest and free last
		for _, l := range ls[1:] {
			r.Reuses++
			if free.End.IsZero() {
				r.CrashReuses++
			}
			if h := held.HeldUntil(); !l.Start.After(h) {
				r.Overlaps = append(r.Overlaps, Violation{Prev: held, Next: l, By: h.Sub(l.Start)})
			}
			if f := free.FreeAt(); l.Start.Before(f) {
				r.EarlyReuses = append(r.EarlyReuses, Violation{Prev: free, Next: l, By: f.Sub(l.Start)})
			}
			if l.HeldUntil().After(held.HeldUntil()) {
				held = l
			}
			if l.FreeAt().After(free.FreeAt()) {
				free = l
			}
		}
	}
	return r
}

// Writer appends a process's lease events to a file, one JSON line per
// event, each written with a single write(2) before the method returns, so
// a SIGKILL loses at most the event being written. Its methods are safe
// for concurrent use.
type Writer struct {
	// mu guards f.
	mu sync.Mutex
	f  *os.File
}

// event is one line of a log file.
type event struct {
	Kind     string        `json:"k"` // "acquire", "renew", "release"
	Lease    int64         `json:"l"` // the writer's number for the lease
	Channel  string        `json:"c,omitempty"`
	ID       string        `json:"i,omitempty"`
	Call     int64         `json:"t"`             // unix ns before the call
	Return   int64         `json:"r,omitempty"`   // unix ns after it returned (acquire)
	TTL      time.Duration `json:"ttl,omitempty"` // acquire
	Cooldown time.Duration `json:"cd,omitempty"`  // acquire
}

// Create creates (or truncates) the log file at path.
func Create(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &Writer{f: f}, nil
}

// Close closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}

func (w *Writer) write(e event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err = w.f.Write(append(b, '\n'))
	return err
}

// Acquired records lease n (a number unique in this writer) of id in
// channel: Acquire was called at call and returned at ret. Write it after
// Acquire returns.
func (w *Writer) Acquired(n int64, channel, id string, call, ret time.Time, ttl, cooldown time.Duration) error {
	return w.write(event{Kind: "acquire", Lease: n, Channel: channel, ID: id,
		Call: call.UnixNano(), Return: ret.UnixNano(), TTL: ttl, Cooldown: cooldown})
}

// Renewed records that a Renew of lease n called at call succeeded. Write it
// after Renew returns nil.
func (w *Writer) Renewed(n int64, call time.Time) error {
	return w.write(event{Kind: "renew", Lease: n, Call: call.UnixNano()})
}

// Releasing records that lease n is released at call. Write it BEFORE
// calling Release: once the call may take effect, the log must know it.
func (w *Writer) Releasing(n int64, call time.Time) error {
	return w.write(event{Kind: "release", Lease: n, Call: call.UnixNano()})
}

// Read merges the log files at paths into leases. A last line cut short
// (no newline) is ignored; any other bad line is an error.
func Read(paths ...string) ([]Lease, error) {
	var out []Lease
	for _, path := range paths {
		ls, err := readFile(path)
		if err != nil {
			return nil, err
		}
		out = append(out, ls...)
	}
	return out, nil
}

func readFile(path string) ([]Lease, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if i := bytes.LastIndexByte(data, '\n'); i+1 < len(data) {
		data = data[:i+1] // a torn last write
	}
	byNum := make(map[int64]*Lease)
	var order []int64
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		l := byNum[e.Lease]
		if e.Kind != "acquire" && l == nil {
			return nil, fmt.Errorf("%s:%d: %s of unknown lease %d", path, line, e.Kind, e.Lease)
		}
		call := time.Unix(0, e.Call)
		switch e.Kind {
		case "acquire":
			if l != nil {
				return nil, fmt.Errorf("%s:%d: lease %d acquired twice", path, line, e.Lease)
			}
			byNum[e.Lease] = &Lease{
				Name:    fmt.Sprintf("%s#%d", baseName(path), e.Lease),
				Channel: e.Channel, ID: e.ID,
				Start: time.Unix(0, e.Return), Valid: call,
				TTL: e.TTL, Cooldown: e.Cooldown,
			}
			order = append(order, e.Lease)
		case "renew":
			if call.After(l.Valid) {
				l.Valid = call
			}
		case "release":
			if l.End.IsZero() {
				l.End = call
			}
		default:
			return nil, fmt.Errorf("%s:%d: unknown event %q", path, line, e.Kind)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make([]Lease, 0, len(order))
	for _, n := range order {
		out = append(out, *byNum[n])
	}
	return out, nil
}

func baseName(path string) string {
	if i := strings.LastIndexByte(path, os.PathSeparator); i >= 0 {
		return path[i+1:]
	}
	return path
}

// ErrViolations is returned by Err for a report with violations.
var ErrViolations = errors.New("lease violations")

// Err returns nil for a clean report, or an error listing up to ten
// violations of each kind.
func (r Report) Err() error {
	if len(r.Overlaps) == 0 && len(r.EarlyReuses) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s", r)
	for i, v := range r.Overlaps {
		if i == 10 {
			break
		}
		fmt.Fprintf(&b, "\n  overlap: %s", v)
	}
	for i, v := range r.EarlyReuses {
		if i == 10 {
			break
		}
		fmt.Fprintf(&b, "\n  early reuse: %s", v)
	}
	return fmt.Errorf("%w: %s", ErrViolations, b.String())
}
