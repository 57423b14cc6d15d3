package bench

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/acme/viewersession/internal/switchnet"
	"github.com/acme/viewersession/kvsemu/camera"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/viewerclient"
)

// RecoveryPath is one way a session recovers from a network change.
type RecoveryPath struct {
	// Name says which: "ice-restart", "full-reconnect" or "fallback".
	Name string
	// Camera is the camera's mode; Policy and ICERestartTimeout are the
	// session's options.
	Camera            camera.Mode
	Policy            vspb.RecoveryPolicy
	ICERestartTimeout time.Duration
}

// RecoveryPaths are the paths the recovery figure measures:
//   - ice-restart: a js-sample camera (it applies a restart offer), policy
//     AUTO: an ICE restart with the same clientId;
//   - full-reconnect: a c-sample camera (it ignores a re-offer from a live
//     clientId), policy FULL_RECONNECT: straight to a new clientId and a
//     new peer connection;
//   - fallback: a c-sample camera, policy AUTO: the ICE restart gets no
//     answer, and after the ICE-restart timeout (1.5s here, 5s by default)
//     the session falls back to a full reconnect.
func RecoveryPaths() []RecoveryPath {
	return []RecoveryPath{
		{Name: "ice-restart", Camera: camera.JSSample, Policy: vspb.RecoveryPolicy_RECOVERY_POLICY_AUTO},
		{Name: "full-reconnect", Camera: camera.CSample, Policy: vspb.RecoveryPolicy_RECOVERY_POLICY_FULL_RECONNECT},
		{Name: "fallback", Camera: camera.CSample, Policy: vspb.RecoveryPolicy_RECOVERY_POLICY_AUTO, ICERestartTimeout: 1500 * time.Millisecond},
	}
}

// RecoveryResult is the recovery figure for one path.
type RecoveryResult struct {
	Path RecoveryPath
	// Timeline is RECOVERY_STARTED -> RECOVERED on the session's timeline
	// (the app reported its peer connection connected again): what
	// vss_recovery_duration_seconds measures.
	Timeline Dist
	// Recovered is the app's view: the network switch -> the RECOVERED event
	// received; Media: the switch -> the first video RTP packet received
	// after it (the camera sends 15 frames/s, so up to 67ms of it is the
	// wait for the next frame).
	Recovered, Media Dist
}

// Recovery runs a real pion thin client through a network change runs
// times on path, each on a fresh Stack with the emulator's camera.
func Recovery(ctx context.Context, path RecoveryPath, runs int) (RecoveryResult, error) {
	res := RecoveryResult{Path: path}
	var timeline, recovered, media []time.Duration
	for i := range runs {
		tl, rec, med, err := recoverOnce(ctx, path, i)
		if err != nil {
			return res, fmt.Errorf("%s run %d: %w", path.Name, i, err)
		}
		timeline, recovered, media = append(timeline, tl), append(recovered, rec), append(media, med)
	}
	res.Timeline, res.Recovered, res.Media = NewDist(timeline), NewDist(recovered), NewDist(media)
	return res, nil
}

// recoverOnce is one run: connect, stream, switch the app's address, tell
// the service, and time the recovery.
func recoverOnce(ctx context.Context, path RecoveryPath, i int) (timeline, recovered, media time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	st, err := StartStack(ctx, StackConfig{Camera: CameraEmulator, CameraMode: path.Camera})
	if err != nil {
		return 0, 0, 0, err
	}
	defer st.Close()
	opts := &vspb.SessionOptions{RecoveryPolicy: path.Policy}
	if path.ICERestartTimeout > 0 {
		opts.IceRestartTimeout = durationpb.New(path.ICERestartTimeout)
	}
	cs, err := st.Create(ctx, 0, fmt.Sprintf("mobile-%d", i), opts)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("create: %w", err)
	}
	// Each run on addresses of its own: 127.0.<n>.2 (Wi-Fi), then .3 (LTE).
	net, err := switchnet.New(fmt.Sprintf("127.0.%d.2", 10+i%200))
	if err != nil {
		return 0, 0, 0, err
	}
	c, err := viewerclient.New(viewerclient.Config{
		Conn:        st.conns[0],
		Session:     cs.GetSession().GetName(),
		Token:       cs.GetSessionToken(),
		Net:         net,
		IceServers:  cs.GetSession().GetIceServers(),
		ICETimeouts: viewerclient.ICETimeouts{Disconnected: time.Second, Failed: 2 * time.Second, Keepalive: 250 * time.Millisecond},
	})
	if err != nil {
		return 0, 0, 0, err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	defer func() {
		stop()
		<-done
	}()
	isType := func(t vspb.EventType) func(*vspb.SessionEvent) bool {
		return func(e *vspb.SessionEvent) bool { return e.GetType() == t }
	}
	if _, err := c.WaitEvent(ctx, func(e *vspb.SessionEvent) bool { return e.GetState() == vspb.SessionState_SESSION_STATE_CONNECTED }); err != nil {
		return 0, 0, 0, fmt.Errorf("waiting for CONNECTED: %w", err)
	}
	if err := c.WaitRTP(ctx, 20); err != nil {
		return 0, 0, 0, fmt.Errorf("waiting for video: %w", err)
	}

	switched := time.Now()
	net.Switch(fmt.Sprintf("127.0.%d.3", 10+i%200))
	before := c.Stats().PacketsReceived
	if err := c.NetworkChanged(ctx, "wifi->lte"); err != nil {
		return 0, 0, 0, err
	}
	rec, err := c.WaitEvent(ctx, isType(vspb.EventType_EVENT_TYPE_RECOVERED))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("waiting for RECOVERED: %w", err)
	}
	recovered = time.Since(switched)
	sameID := rec.GetClientId() == cs.GetSession().GetClientId()
	if wantSame := path.Name == "ice-restart"; sameID != wantSame {
		return 0, 0, 0, fmt.Errorf("recovered with clientId %s (first %s): not the %s path", rec.GetClientId(), cs.GetSession().GetClientId(), path.Name)
	}
	if err := c.WaitRTP(ctx, int(before)+1); err != nil {
		return 0, 0, 0, fmt.Errorf("waiting for video after the switch: %w", err)
	}
	media = time.Since(switched)
	started, err := c.WaitEvent(ctx, isType(vspb.EventType_EVENT_TYPE_RECOVERY_STARTED))
	if err != nil {
		return 0, 0, 0, err
	}
	timeline = rec.GetTime().AsTime().Sub(started.GetTime().AsTime())
	return timeline, recovered, media, nil
}
