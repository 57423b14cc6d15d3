//go:build realnet

package realnet

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// What "video flows" means, from viewerctl's 100 ms media samples.
const (
	// maxGap is the longest time between two samples whose packet counter
	// grew that still counts as flowing video (7 frames at 15 fps).
	maxGap = 500 * time.Millisecond
	// sustainFor is how long media must keep flowing after a sample for
	// that sample to count as "flowing again".
	sustainFor = time.Second
	// steadyFor is how long media must flow before a link change.
	steadyFor = 2 * time.Second
	// falseWithin is how soon after RECOVERED the counters must grow.
	falseWithin = time.Second
)

// sample is one media line: the counters of peer connection pc, and how
// many packets arrived since the previous sample (a new pc starts from 0).
type sample struct {
	at      time.Time
	pc      uint32
	packets uint64
	delta   uint64
}

func samples(lines []line) []sample {
	var (
		out  []sample
		prev *sample
	)
	for _, l := range lines {
		if l.Kind != "media" {
			continue
		}
		s := sample{at: l.at, pc: l.PC, packets: l.Packets}
		switch {
		case l.PC == 0:
		case prev == nil || prev.pc != l.PC:
			s.delta = l.Packets
		case l.Packets > prev.packets:
			s.delta = l.Packets - prev.packets
		}
		out = append(out, s)
		prev = &out[len(out)-1]
	}
	return out
}

// growth returns the packets of the samples in (from, to].
func growth(ss []sample, from, to time.Time) uint64 {
	var n uint64
	for _, s := range ss {
		if s.at.After(from) && !s.at.After(to) {
			n += s.delta
		}
	}
	return n
}

// flow says whether media flowed over [from, to]: the samples cover the
// span, at least minPackets arrived, and no two growing samples (nor the
// span's ends) are more than maxGap apart. known is false while the samples
// do not reach to yet.
func flow(ss []sample, from, to time.Time, minPackets uint64) (ok, known bool) {
	if len(ss) == 0 || ss[len(ss)-1].at.Before(to) {
		return false, false
	}
	last := from
	var n uint64
	for _, s := range ss {
		if s.at.Before(from) || s.at.After(to) || s.delta == 0 {
			continue
		}
		if s.at.Sub(last) > maxGap {
			return false, true
		}
		last = s.at
		n += s.delta
	}
	if to.Sub(last) > maxGap {
		return false, true
	}
	return n >= minPackets, true
}

// steadySince returns whether media flowed steadily over the steadyFor
// before the last sample, with the sample window starting after since, and
// the packet rate (per second) over it.
func steadyAt(ss []sample, since time.Time) (bool, float64) {
	if len(ss) == 0 {
		return false, 0
	}
	to := ss[len(ss)-1].at
	from := to.Add(-steadyFor)
	if from.Before(since) {
		return false, 0
	}
	// At least 5 packets a second: video, not a trickle.
	ok, _ := flow(ss, from, to, uint64(5*steadyFor/time.Second))
	return ok, float64(growth(ss, from, to)) / steadyFor.Seconds()
}

// backAfter finds when video flows again after the path it used died at
// t0: the first sample whose whole interval (since the previous sample)
// lies after t0 and whose counter grew, and from which media keeps flowing
// for sustainFor (at least half the rate seen before). A packet counted in
// such a sample arrived after t0, so over a path that works again: the old
// one was gone (link down, or every packet dropped). stalled says whether a
// sample after t0 showed no growth before that. known is false while more
// samples are needed to tell.
func backAfter(ss []sample, t0 time.Time, rate float64) (back time.Time, stalled, known bool) {
	minPackets := uint64(rate * sustainFor.Seconds() / 2)
	for i := 1; i < len(ss); i++ {
		s := ss[i]
		if ss[i-1].at.Before(t0) {
			continue
		}
		if s.delta == 0 {
			stalled = true
			continue
		}
		ok, k := flow(ss[i:], s.at, s.at.Add(sustainFor), minPackets)
		if !k {
			return time.Time{}, stalled, false
		}
		if ok {
			return s.at, stalled, true
		}
	}
	return time.Time{}, stalled, false
}

// events returns the event lines at or after from, in order.
func events(lines []line, from time.Time, types ...string) []line {
	var out []line
	for _, l := range lines {
		if l.Kind != "event" || l.at.Before(from) {
			continue
		}
		if len(types) == 0 || contains(types, l.Type) {
			out = append(out, l)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// falseRecoveries returns the RECOVERED events at or after from that were
// not followed by growing media (at least a quarter of the rate, and at
// least 2 packets) within falseWithin, and whether every one could be
// judged yet.
func falseRecoveries(lines []line, ss []sample, from time.Time, rate float64) (bad []line, known bool) {
	known = true
	need := max(uint64(rate*falseWithin.Seconds()/4), 2)
	for _, ev := range events(lines, from, "RECOVERED") {
		end := ev.at.Add(falseWithin)
		if len(ss) == 0 || ss[len(ss)-1].at.Before(end) {
			known = false
			continue
		}
		if growth(ss, ev.at, end) < need {
			bad = append(bad, ev)
		}
	}
	return bad, known
}

// excerpt prints the event, network and redial lines in [from, to], each
// with its time relative to t0, and a line for the media: when it last grew
// before t0, when it stalled, when it flowed again.
func excerpt(lines []line, ss []sample, t0, from, to time.Time, back time.Time) string {
	var b strings.Builder
	rel := func(at time.Time) string { return fmt.Sprintf("%+8.3fs", at.Sub(t0).Seconds()) }
	for _, l := range lines {
		if l.at.Before(from) || l.at.After(to) || l.Kind == "media" {
			continue
		}
		fmt.Fprintf(&b, "    %s  %-7s %s\n", rel(l.at), l.Kind, describe(l))
	}
	var lastBefore, firstStall time.Time
	for i, s := range ss {
		if s.delta > 0 && !s.at.After(t0) {
			lastBefore = s.at
		}
		if s.at.After(t0) && s.delta == 0 && firstStall.IsZero() && i > 0 {
			firstStall = s.at
		}
	}
	fmt.Fprintf(&b, "    media: last growth before the change %s; first sample without growth %s; ", rel(lastBefore), relOrNever(firstStall, rel))
	if back.IsZero() {
		b.WriteString("not flowing again\n")
	} else {
		fmt.Fprintf(&b, "flowing again (sustained) %s\n", rel(back))
	}
	return b.String()
}

func relOrNever(at time.Time, rel func(time.Time) string) string {
	if at.IsZero() {
		return "never"
	}
	return rel(at)
}

// describe prints a line's fields (except kind and time) as key=value,
// type first.
func describe(l line) string {
	var parts []string
	if l.Type != "" {
		parts = append(parts, l.Type)
	}
	keys := make([]string, 0, len(l.fields))
	for k := range l.fields {
		if k != "kind" && k != "time" && k != "type" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := fmt.Sprint(l.fields[k])
		if f, ok := l.fields[k].(float64); ok && f == float64(int64(f)) {
			v = fmt.Sprint(int64(f))
		}
		if strings.ContainsAny(v, " \t") {
			v = fmt.Sprintf("%q", v)
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, " ")
}
