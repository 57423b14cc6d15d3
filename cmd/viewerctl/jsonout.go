package main

import (
	"encoding/json"
	"io"
	"time"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/viewerclient"
)

// jsonTime is the layout of a line's "time": RFC 3339 with all nine
// digits of nanoseconds.
const jsonTime = "2006-01-02T15:04:05.000000000Z07:00"

// jsonLines writes -json's lines (see jsonHelp); nil writes nothing. Not
// safe for concurrent use: the watcher's goroutine writes them all.
type jsonLines struct {
	enc *json.Encoder
}

func newJSONLines(w io.Writer) *jsonLines { return &jsonLines{enc: json.NewEncoder(w)} }

func (j *jsonLines) write(v any) {
	if j == nil {
		return
	}
	_ = j.enc.Encode(v) // stdout gone: nothing better to do
}

type jsonMedia struct {
	Time    string `json:"time"`
	Kind    string `json:"kind"`
	PC      uint32 `json:"pc"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	Frames  uint64 `json:"frames"`
}

func (j *jsonLines) media(at time.Time, m viewerclient.MediaCounters) {
	j.write(jsonMedia{Time: at.Format(jsonTime), Kind: "media", PC: m.PeerConnectionID, Packets: m.Packets, Bytes: m.Bytes, Frames: m.Frames})
}

type jsonEvent struct {
	Time     string `json:"time"`
	Kind     string `json:"kind"`
	Sequence uint64 `json:"sequence"`
	Type     string `json:"type"`
	State    string `json:"state"`
	Message  string `json:"message"`
	ClientID string `json:"client_id"`
	Step     string `json:"step,omitempty"`
	OutageMS *int64 `json:"outage_ms,omitempty"`
	Learned  *bool  `json:"learned,omitempty"`
}

func (j *jsonLines) event(at time.Time, e *vspb.SessionEvent) {
	if j == nil {
		return
	}
	l := jsonEvent{
		Time: at.Format(jsonTime), Kind: "event", Sequence: e.GetSequence(),
		Type:     trimEnum(e.GetType().String(), "EVENT_TYPE_"),
		State:    trimEnum(e.GetState().String(), "SESSION_STATE_"),
		Message:  e.GetMessage(),
		ClientID: e.GetClientId(),
	}
	if r := e.GetRecovery(); r != nil {
		learned := r.GetLearned()
		l.Step, l.Learned = stepName(r.GetStep()), &learned
		if r.GetOutage() != nil {
			ms := r.GetOutage().AsDuration().Milliseconds()
			l.OutageMS = &ms
		}
	}
	j.write(l)
}

type jsonNote struct {
	Time        string `json:"time"`
	Kind        string `json:"kind"`
	Description string `json:"description,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

func (j *jsonLines) network(at time.Time, description string) {
	j.write(jsonNote{Time: at.Format(jsonTime), Kind: "network", Description: description})
}

func (j *jsonLines) redial(at time.Time, reason string) {
	j.write(jsonNote{Time: at.Format(jsonTime), Kind: "redial", Reason: reason})
}

type jsonOutage struct {
	Step     string `json:"step"`
	OutageMS int64  `json:"outage_ms"`
}

type jsonSummary struct {
	Time            string       `json:"time"`
	Kind            string       `json:"kind"`
	FirstVideoMS    int64        `json:"first_video_ms"`
	Outages         []jsonOutage `json:"outages"`
	GapsMS          []int64      `json:"gaps_ms"`
	BlackMS         int64        `json:"black_ms"`
	FalseRecoveries int          `json:"false_recoveries"`
	Packets         int64        `json:"packets"`
	OK              bool         `json:"ok"`
	Error           string       `json:"error"`
}

// summary writes the last line: v (nil when the watch failed before
// judging), the packets received, and the outcome.
func (j *jsonLines) summary(at time.Time, v *verdict, packets int64, err error) {
	if j == nil {
		return
	}
	l := jsonSummary{Time: at.Format(jsonTime), Kind: "summary", FirstVideoMS: -1, Outages: []jsonOutage{}, GapsMS: []int64{},
		Packets: packets, OK: err == nil}
	if v != nil {
		if v.firstVideo >= 0 {
			l.FirstVideoMS = v.firstVideo.Milliseconds()
		}
		for _, o := range v.outages {
			l.Outages = append(l.Outages, jsonOutage{Step: o.step, OutageMS: o.outage.Milliseconds()})
		}
		for _, g := range v.gaps {
			l.GapsMS = append(l.GapsMS, g.Milliseconds())
		}
		l.BlackMS, l.FalseRecoveries = v.black.Milliseconds(), v.falseRecoveries
	}
	if err != nil {
		l.Error = err.Error()
	}
	j.write(l)
}
