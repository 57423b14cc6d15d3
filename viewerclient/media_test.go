package viewerclient

import (
	"context"
	"testing"
	"time"

	"github.com/pion/rtp"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// The client reports its media counters while the stream is open: they
// grow, and a new peer connection gets a new id and counters from zero.
func TestMediaReports(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			f, cc := startFake(t, 0)
			c, err := New(Config{Conn: cc, Session: fakeSession, Token: fakeToken, Mode: mode, Net: loopback(t), Logger: testLogger(t),
				ICETimeouts: fastICE, MediaInterval: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			rctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- c.Run(rctx) }()
			defer func() {
				stop()
				<-done
			}()

			reps, err := f.waitReport(ctx, func(r *vspb.MediaReport) bool {
				return r.GetPeerConnectionId() == 1 && r.GetPacketsReceived() >= 20 && r.GetFramesDecoded() > 0
			})
			if err != nil {
				t.Fatalf("no report of 20 packets on peer connection 1: %v (reports %v)", err, reps)
			}
			last1 := reps[len(reps)-1]
			f.renegotiate(vspb.Renegotiate_ACTION_NEW_PEER_CONNECTION)
			reps, err = f.waitReport(ctx, func(r *vspb.MediaReport) bool {
				return r.GetPeerConnectionId() == 2 && r.GetPacketsReceived() >= 5
			})
			if err != nil {
				t.Fatalf("no report of 5 packets on peer connection 2: %v (reports %v)", err, reps)
			}
			checkReports(t, reps)
			for _, r := range reps {
				if r.GetPeerConnectionId() == 2 && r.GetPacketsReceived() > 0 {
					if r.GetPacketsReceived() >= last1.GetPacketsReceived() {
						t.Errorf("peer connection 2's first report has %d packets, want fewer than peer connection 1's %d (counters restart)",
							r.GetPacketsReceived(), last1.GetPacketsReceived())
					}
					break
				}
			}
			if m := c.Stats().Media; m.PeerConnectionID != 2 || m.Packets == 0 || m.Bytes == 0 {
				t.Errorf("Stats().Media = %+v, want peer connection 2 with packets", m)
			}
		})
	}
}

// checkReports: peer connection ids never go back, and within one the
// counters never decrease; bytes and frames go with packets.
func checkReports(t *testing.T, reps []*vspb.MediaReport) {
	t.Helper()
	var prev *vspb.MediaReport
	for i, r := range reps {
		if r.GetPacketsReceived() > 0 && (r.GetBytesReceived() == 0 || r.GetFramesDecoded() > r.GetPacketsReceived()) {
			t.Errorf("report %d = %v: bytes and frames do not match the packets", i, r)
		}
		if prev != nil {
			switch {
			case r.GetPeerConnectionId() < prev.GetPeerConnectionId():
				t.Errorf("report %d: peer connection %d after %d", i, r.GetPeerConnectionId(), prev.GetPeerConnectionId())
			case r.GetPeerConnectionId() == prev.GetPeerConnectionId() &&
				(r.GetPacketsReceived() < prev.GetPacketsReceived() || r.GetBytesReceived() < prev.GetBytesReceived() || r.GetFramesDecoded() < prev.GetFramesDecoded()):
				t.Errorf("report %d = %v went back from %v", i, r, prev)
			}
		}
		prev = r
	}
}

// Frames are counted once per marker bit and RTP timestamp; bytes are the
// payload without the header and padding.
func TestPCMediaCountsFramesAndPayload(t *testing.T) {
	var m pcMedia
	pkt := func(marker bool, ts uint32, payload, pad int) {
		h := rtp.Header{Version: 2, Marker: marker, Timestamp: ts, Padding: pad > 0}
		raw, err := (&rtp.Packet{Header: h, Payload: make([]byte, payload), PaddingSize: byte(pad)}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var got rtp.Header
		if _, err := got.Unmarshal(raw); err != nil {
			t.Fatal(err)
		}
		m.add(len(raw), got, raw)
	}
	pkt(false, 100, 1000, 0)
	pkt(true, 100, 500, 0)  // frame 1
	pkt(true, 100, 10, 0)   // a repeated marker: still frame 1
	pkt(false, 200, 700, 4) // the marker of frame 2 is lost
	pkt(true, 300, 300, 0)  // frame 3
	want := MediaCounters{Packets: 5, Bytes: 1000 + 500 + 10 + 700 + 300, Frames: 2}
	if m.MediaCounters != want {
		t.Errorf("counters = %+v, want %+v", m.MediaCounters, want)
	}
}

// Packet times and gaps: a stretch longer than VideoGap between two
// packets is a gap; shorter ones are not.
func TestStatsRecordGaps(t *testing.T) {
	c := newTestClient(t, ModeConnect)
	t0 := time.Unix(1000, 0)
	raw, err := (&rtp.Packet{Header: rtp.Header{Version: 2}, Payload: make([]byte, 100)}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Duration{0, 100 * time.Millisecond, 500 * time.Millisecond, 1200 * time.Millisecond, 1300 * time.Millisecond, 3 * time.Second} {
		c.onRTP(0, raw, rtp.Header{Version: 2}, 90000, t0.Add(at))
	}
	s := c.Stats()
	want := []Gap{{From: t0.Add(500 * time.Millisecond), To: t0.Add(1200 * time.Millisecond)}, {From: t0.Add(1300 * time.Millisecond), To: t0.Add(3 * time.Second)}}
	if len(s.Gaps) != len(want) || s.Gaps[0] != want[0] || s.Gaps[1] != want[1] {
		t.Errorf("Gaps = %v, want %v", s.Gaps, want)
	}
	if !s.FirstPacketAt.Equal(t0) || !s.LastPacketAt.Equal(t0.Add(3*time.Second)) || s.PacketsReceived != 6 {
		t.Errorf("first %v, last %v, packets %d; want %v, %v, 6", s.FirstPacketAt, s.LastPacketAt, s.PacketsReceived, t0, t0.Add(3*time.Second))
	}
}
