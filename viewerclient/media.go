package viewerclient

import (
	"time"

	"github.com/pion/rtp"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// MediaCounters are the video counters of one peer connection, as the
// client reports them to the service (MediaReport): they start at zero with
// each new peer connection, whose id changes.
//
// Frames counts complete frames: a frame is complete when its last packet,
// the one with the RTP marker bit, arrives (a repeated marker for the same
// RTP timestamp counts once). This client does not decode video, so a
// frame whose marker packet was lost is not counted, and one that arrived
// whole but would not decode is.
type MediaCounters struct {
	// PeerConnectionID identifies the peer connection: 1 for the first of
	// the run, one more for each new one; 0 when there is none.
	PeerConnectionID uint32
	// Packets counts video RTP packets received on it.
	Packets uint64
	// Bytes counts their payload bytes (RTP header and padding excluded).
	Bytes uint64
	// Frames counts complete frames (see MediaCounters).
	Frames uint64
}

func (m MediaCounters) report() *vspb.MediaReport {
	return &vspb.MediaReport{
		PeerConnectionId: m.PeerConnectionID,
		PacketsReceived:  m.Packets,
		BytesReceived:    m.Bytes,
		FramesDecoded:    m.Frames,
	}
}

// pcMedia counts what one peer connection received.
type pcMedia struct {
	MediaCounters
	frameTS uint32 // RTP timestamp of the last complete frame
	framed  bool   // frameTS is set
}

// add counts one RTP packet of size bytes whose header is h; it reports
// whether the packet completed a frame.
func (m *pcMedia) add(size int, h rtp.Header, raw []byte) bool {
	payload := size - h.MarshalSize()
	if h.Padding && payload > 0 && size > 0 {
		payload -= int(raw[size-1])
	}
	m.Packets++
	m.Bytes += uint64(max(payload, 0))
	if !h.Marker || (m.framed && m.frameTS == h.Timestamp) {
		return false
	}
	m.Frames++
	m.frameTS, m.framed = h.Timestamp, true
	return true
}

// fpsMeter estimates a frame rate from the RTP timestamps of the last
// frames of one stream.
type fpsMeter struct {
	ssrc  uint32
	clock uint32
	ts    []uint32 // RTP timestamps of the last frames, oldest first
	last  time.Time
}

// fpsWindow is how many frames the rate is measured over.
const fpsWindow = 16

func (m *fpsMeter) frame(ssrc, ts, clock uint32, now time.Time) {
	if ssrc != m.ssrc || clock != m.clock {
		*m = fpsMeter{ssrc: ssrc, clock: clock}
	}
	if n := len(m.ts); n > 0 && m.ts[n-1] == ts {
		return // a second marker for the same frame
	}
	m.ts = append(m.ts, ts)
	if len(m.ts) > fpsWindow {
		m.ts = m.ts[len(m.ts)-fpsWindow:]
	}
	m.last = now
}

func (m *fpsMeter) rate(now time.Time) float64 {
	if len(m.ts) < 2 || now.Sub(m.last) > time.Second || m.clock == 0 {
		return 0
	}
	span := m.ts[len(m.ts)-1] - m.ts[0] // modular: wraps correctly
	if span == 0 {
		return 0
	}
	return float64(len(m.ts)-1) * float64(m.clock) / float64(span)
}
