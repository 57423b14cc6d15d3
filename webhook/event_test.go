package webhook

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/acme/viewersession/sessionmgr"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestFromTimelineGolden pins each webhook type's body (the wire format
// receivers parse) in testdata/<type>.json.
func TestFromTimelineGolden(t *testing.T) {
	ref := sessionmgr.SessionRef{
		ID:          "abcdefghijklmnopqrstuvwxyz",
		ChannelARN:  "arn:aws:kinesisvideo:us-west-2:123456789012:channel/front-door/1700000000000",
		ChannelName: "front-door",
		ViewerID:    "tv-1",
	}
	at := time.Date(2026, 12, 5, 22, 0, 0, 123000000, time.UTC)
	tests := []struct {
		file string
		give sessionmgr.Event
		want Type
	}{
		{"created.json", sessionmgr.Event{Seq: 1, Time: at, Type: sessionmgr.EventCreated}, Created},
		{"media_flowing.json", sessionmgr.Event{Seq: 9, Time: at, Type: sessionmgr.EventMediaFlowing, ClientID: "tv-1",
			Media: &sessionmgr.MediaReport{PeerConnection: 1, Packets: 20}}, MediaFlowing},
		{"recovered.json", sessionmgr.Event{Seq: 15, Time: at, Type: sessionmgr.EventRecovered, ClientID: "tv-1",
			Recovery: &sessionmgr.Recovery{Step: sessionmgr.StepNewPeerConnection, Outage: 2345 * time.Millisecond}}, Recovered},
		{"failed.json", sessionmgr.Event{Seq: 7, Time: at, Type: sessionmgr.EventFailed, ClientID: "tv-2", Close: sessionmgr.CloseFailed,
			Failure: &sessionmgr.Failure{Reason: sessionmgr.FailureAnswerTimeout, Message: "the camera did not answer"}}, Failed},
		{"closed.json", sessionmgr.Event{Seq: 20, Time: at, Type: sessionmgr.EventClosed, ClientID: "tv-1", Close: sessionmgr.CloseByBackend}, Closed},
	}
	for _, tt := range tests {
		t.Run(string(tt.want), func(t *testing.T) {
			ev, ok := FromTimeline(ref, tt.give)
			if !ok || ev.Type != tt.want {
				t.Fatalf("FromTimeline(%v) = %q, %v; want %q, true", tt.give.Type, ev.Type, ok, tt.want)
			}
			ev.ID = "evt_FIXED"
			got, err := json.MarshalIndent(ev, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", tt.file)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("body of %s:\n%s\nwant (%s):\n%s", tt.want, got, path, want)
			}
		})
	}
}

// TestFromTimelineSkips: only the five lifecycle events send webhooks.
func TestFromTimelineSkips(t *testing.T) {
	send := map[sessionmgr.EventType]bool{
		sessionmgr.EventCreated: true, sessionmgr.EventMediaFlowing: true, sessionmgr.EventRecovered: true,
		sessionmgr.EventFailed: true, sessionmgr.EventClosed: true,
	}
	for typ := sessionmgr.EventUnknown; typ <= sessionmgr.EventMediaStalled; typ++ {
		_, ok := FromTimeline(sessionmgr.SessionRef{ID: "x"}, sessionmgr.Event{Type: typ})
		if ok != send[typ] {
			t.Errorf("FromTimeline(%v) ok = %v, want %v", typ, ok, send[typ])
		}
	}
}
