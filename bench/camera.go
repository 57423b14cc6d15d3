package bench

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/acme/viewersession/kvsemu"
	"github.com/acme/viewersession/kvsemu/camera"
)

// Fast-camera tuning: a viewer that got its answer and left never
// completes ICE, so the camera's peer connection fails after
// fastICEDisconnected + fastICEFailed in checking and is dropped at the
// next cleanup.
const (
	fastICEDisconnected = 100 * time.Millisecond
	fastICEFailed       = 100 * time.Millisecond
	fastICEKeepalive    = 50 * time.Millisecond
	fastCleanup         = 100 * time.Millisecond
	fastMaxSessions     = 1000
)

// fastCamera is a package camera run by a Stack (CameraFast).
type fastCamera struct {
	cam    *camera.Camera
	cancel context.CancelFunc
	done   chan struct{}
}

// startFastCamera connects a camera as arn's master over the emulator's
// signaling WebSocket, with a URL the emulator presigns.
func startFastCamera(emu *kvsemu.Emulator, hc *http.Client, arn string, mode camera.Mode) (*fastCamera, error) {
	cam, err := camera.New(camera.Config{
		Mode: mode,
		Dial: func(ctx context.Context) (*websocket.Conn, error) {
			u, err := emu.PresignViewerURL(arn, "") // no clientId: the master's URL
			if err != nil {
				return nil, err
			}
			ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: hc})
			return ws, err
		},
		CleanupPeriod: fastCleanup,
		MaxSessions:   fastMaxSessions,
		SettingEngine: func(se *webrtc.SettingEngine) {
			se.SetICETimeouts(fastICEDisconnected, fastICEFailed, fastICEKeepalive)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("camera: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &fastCamera{cam: cam, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		_ = cam.Run(ctx)
	}()
	return c, nil
}

// stop takes the camera offline and waits for it.
func (c *fastCamera) stop() {
	c.cancel()
	<-c.done
}
