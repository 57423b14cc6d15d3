package kvsemu

import (
	"context"
	"fmt"
	"net/http"

	"github.com/coder/websocket"

	"github.com/acme/viewersession/kvsemu/camera"
)

// cameraRun is a running simulated camera.
type cameraRun struct {
	cam    *camera.Camera
	mode   camera.Mode
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
}

// StartCamera connects a simulated camera (package camera) to the channel as
// its MASTER, over the emulator's own WSS with a URL the emulator presigns.
// mode "" means Config.CameraMode. Starting a camera that already runs in
// the same mode does nothing; in another mode it restarts it. A fault set
// with SetCameraFault applies. It returns an error wrapping ErrNotFound,
// ErrInvalidArgument or ErrClosed.
func (e *Emulator) StartCamera(channelARN string, mode camera.Mode) error {
	if mode == "" {
		mode = e.cfg.CameraMode
	}
	if _, err := camera.ParseMode(string(mode)); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	ch, ok := e.channel(channelARN)
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, channelARN)
	}
	e.camMu.Lock()
	defer e.camMu.Unlock()
	e.mu.Lock()
	run, running := e.cameras[channelARN]
	fault := e.faults[channelARN]
	e.mu.Unlock()
	if running {
		if run.mode == mode {
			return nil
		}
		e.stopCameraLocked(channelARN)
	}
	cam, err := camera.New(camera.Config{
		Mode:   mode,
		Dial:   e.cameraDial(channelARN),
		Logger: e.log.With("component", "camera", "channel", ch.name),
		HostIP: e.cfg.CameraIP,
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	cam.SetFault(fault)
	ready := make(chan context.CancelFunc, 1)
	done := make(chan struct{})
	started := e.goWithLife(func(ctx context.Context) {
		defer close(done)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		ready <- cancel
		if err := cam.Run(ctx); err != nil {
			e.log.Warn("kvsemu: camera stopped", "channel", ch.name, "err", err)
		}
	})
	if !started {
		return ErrClosed
	}
	e.mu.Lock()
	e.cameras[channelARN] = &cameraRun{cam: cam, mode: mode, cancel: <-ready, done: done}
	e.mu.Unlock()
	e.log.Info("kvsemu: camera started", "channel", ch.name, "mode", string(mode))
	return nil
}

// StopCamera takes the channel's camera offline: its signaling connection
// and peer connections close. It returns an error wrapping ErrNotFound or
// ErrNoCamera.
func (e *Emulator) StopCamera(channelARN string) error {
	if _, ok := e.channel(channelARN); !ok {
		e.camMu.Lock()
		defer e.camMu.Unlock()
		if !e.stopCameraLocked(channelARN) {
			return fmt.Errorf("%w: %s", ErrNotFound, channelARN)
		}
		return nil
	}
	e.camMu.Lock()
	defer e.camMu.Unlock()
	if !e.stopCameraLocked(channelARN) {
		return fmt.Errorf("%w: %s", ErrNoCamera, channelARN)
	}
	return nil
}

// stopCameraLocked stops the camera, if any, and waits for it. camMu is held.
func (e *Emulator) stopCameraLocked(channelARN string) bool {
	e.mu.Lock()
	run, ok := e.cameras[channelARN]
	delete(e.cameras, channelARN)
	e.mu.Unlock()
	if !ok {
		return false
	}
	run.cancel()
	<-run.done
	// The camera closed its socket; wait until the emulator has noticed, so
	// that the channel has no master when StopCamera returns.
	if ch, ok := e.channel(channelARN); ok {
		ch.mu.Lock()
		m := ch.master
		ch.mu.Unlock()
		if m != nil && m.camera {
			m.stop(stopDropped)
			<-m.exited
		}
	}
	e.log.Info("kvsemu: camera stopped", "arn", channelARN)
	return true
}

// SetCameraFault sets the answer faults of the channel's camera, now if it
// runs and whenever it starts later. The zero Fault clears them. It returns
// an error wrapping ErrNotFound.
func (e *Emulator) SetCameraFault(channelARN string, f camera.Fault) error {
	if _, ok := e.channel(channelARN); !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, channelARN)
	}
	e.mu.Lock()
	e.faults[channelARN] = f
	run := e.cameras[channelARN]
	e.mu.Unlock()
	if run != nil {
		run.cam.SetFault(f)
	}
	return nil
}

// cameraFault returns the fault set for the channel's camera.
func (e *Emulator) cameraFault(channelARN string) camera.Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.faults[channelARN]
}

// CameraStats returns the counters of the channel's running camera.
func (e *Emulator) CameraStats(channelARN string) (camera.Stats, error) {
	e.mu.Lock()
	run := e.cameras[channelARN]
	e.mu.Unlock()
	if run == nil {
		return camera.Stats{}, fmt.Errorf("%w: %s", ErrNoCamera, channelARN)
	}
	return run.cam.Stats(), nil
}

// cameraDial returns the camera's Dial: a fresh presigned MASTER URL for
// every attempt, dialled with a client that trusts the emulator's CA.
func (e *Emulator) cameraDial(channelARN string) func(ctx context.Context) (*websocket.Conn, error) {
	return func(ctx context.Context) (*websocket.Conn, error) {
		u, err := e.presign(channelARN, "", 0)
		if err != nil {
			return nil, err
		}
		ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
			HTTPClient: e.client,
			HTTPHeader: http.Header{cameraHeader: {"1"}},
		})
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("dial master: %w", err)
		}
		return ws, nil
	}
}
