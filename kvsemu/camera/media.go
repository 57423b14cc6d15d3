package camera

import (
	"bytes"
	"context"
	_ "embed" // the test clip
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
)

// clipIVF is the looped video: VP8 in IVF, see testdata/README.md.
//
//go:embed testdata/clip.ivf
var clipIVF []byte

// clip is a parsed IVF file: its frames and the time each one shows.
type clip struct {
	frames   [][]byte
	frameDur time.Duration
}

// parseClip reads every frame of an IVF VP8 file.
func parseClip(b []byte) (clip, error) {
	r, h, err := ivfreader.NewWith(bytes.NewReader(b))
	if err != nil {
		return clip{}, fmt.Errorf("%w: %w", errBadClip, err)
	}
	if h.FourCC != "VP80" || h.TimebaseDenominator == 0 || h.TimebaseNumerator == 0 {
		return clip{}, fmt.Errorf("%w: fourcc %q timebase %d/%d", errBadClip,
			h.FourCC, h.TimebaseNumerator, h.TimebaseDenominator)
	}
	var cl clip
	cl.frameDur = time.Second * time.Duration(h.TimebaseNumerator) / time.Duration(h.TimebaseDenominator)
	for {
		frame, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return clip{}, fmt.Errorf("%w: frame %d: %w", errBadClip, len(cl.frames), err)
		}
		cl.frames = append(cl.frames, frame)
	}
	if len(cl.frames) == 0 {
		return clip{}, fmt.Errorf("%w: no frames", errBadClip)
	}
	return cl, nil
}

// stream writes the clip to the shared track in a loop, one frame per frame
// duration, until ctx ends. A track with no bound peer connection drops the
// samples, so the clip plays like a live camera whether or not anyone
// watches.
func (r *run) stream(ctx context.Context) {
	t := time.NewTicker(r.c.clip.frameDur)
	defer t.Stop()
	for i := 0; ; i = (i + 1) % len(r.c.clip.frames) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := media.Sample{Data: r.c.clip.frames[i], Duration: r.c.clip.frameDur}
		if err := r.track.WriteSample(s); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			r.log.Debug("write sample", "err", err)
		}
	}
}

// newAPI builds the pion API the camera's peer connections share: default
// codecs, a packet-counting interceptor, and host candidates on HostIP only
// over UDP, with mDNS off.
//
// HostIP is enforced with pion's IP filter rather than a UDP mux bound to
// it: each peer connection still binds its own ephemeral port on HostIP, as
// the KVS SDK masters do, so one viewer's ICE restart or replaced
// connection never shares a socket with another's.
func (c *Camera) newAPI() (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("register codecs: %w", err)
	}
	reg := &interceptor.Registry{}
	reg.Add(counterFactory{n: &c.packets})

	se := webrtc.SettingEngine{LoggerFactory: pionLogs{log: c.cfg.Logger.With("component", "pion")}}
	host := c.cfg.HostIP
	network := webrtc.NetworkTypeUDP4
	if host.Is6() {
		network = webrtc.NetworkTypeUDP6
	}
	se.SetIncludeLoopbackCandidate(host.IsLoopback())
	se.SetIPFilter(func(ip net.IP) bool {
		a, ok := netip.AddrFromSlice(ip)
		return ok && a.Unmap() == host
	})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{network})
	if c.cfg.SettingEngine != nil {
		c.cfg.SettingEngine(&se)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg),
		webrtc.WithSettingEngine(se)), nil
}

// counterFactory makes interceptors that count RTP packets sent.
type counterFactory struct {
	n *atomic.Uint64
}

// NewInterceptor implements interceptor.Factory.
func (f counterFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &counter{n: f.n}, nil
}

// counter counts every RTP packet that a local stream writes successfully.
type counter struct {
	interceptor.NoOp
	n *atomic.Uint64
}

// BindLocalStream wraps writer to count packets.
func (i *counter) BindLocalStream(_ *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		n, err := writer.Write(h, payload, a)
		if err == nil {
			i.n.Add(1)
		}
		return n, err
	})
}
