package kvsemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/acme/viewersession/kvsemu/camera"
)

// adminPrefix is the path of the admin API on the emulator's listener.
const adminPrefix = "/_emulator"

// ChannelState describes a channel for the admin API.
type ChannelState struct {
	Name              string       `json:"name"`
	ARN               string       `json:"channelArn"`
	MessageTTLSeconds int64        `json:"messageTtlSeconds"`
	CreationTime      time.Time    `json:"creationTime"`
	MasterConnected   bool         `json:"masterConnected"`
	Viewers           []string     `json:"viewers"`
	Camera            *CameraState `json:"camera,omitempty"`
}

// CameraState describes a channel's simulated camera.
type CameraState struct {
	Running bool         `json:"running"`
	Mode    camera.Mode  `json:"mode,omitempty"`
	Fault   FaultState   `json:"fault"`
	Stats   camera.Stats `json:"stats"`
}

// FaultState is camera.Fault in the admin API's JSON shape.
type FaultState struct {
	NoAnswer        bool  `json:"noAnswer"`
	AnswerDelayMs   int64 `json:"answerDelayMs"`
	AnswerFromOffer int   `json:"answerFromOffer"`
}

// Channels describes every channel, oldest first.
func (e *Emulator) Channels() []ChannelState {
	var out []ChannelState
	for _, ch := range e.allChannels() {
		st := ChannelState{
			Name:              ch.name,
			ARN:               ch.arn,
			MessageTTLSeconds: ch.ttlSeconds(),
			CreationTime:      ch.created,
			Viewers:           []string{},
		}
		ch.mu.Lock()
		st.MasterConnected = ch.master != nil
		for id := range ch.viewers {
			st.Viewers = append(st.Viewers, id)
		}
		ch.mu.Unlock()
		slices.Sort(st.Viewers)
		f := e.cameraFault(ch.arn)
		cs := &CameraState{Fault: FaultState{
			NoAnswer:        f.NoAnswer,
			AnswerDelayMs:   f.AnswerDelay.Milliseconds(),
			AnswerFromOffer: f.AnswerFromOffer,
		}}
		e.mu.Lock()
		if run := e.cameras[ch.arn]; run != nil {
			cs.Running, cs.Mode, cs.Stats = true, run.mode, run.cam.Stats()
		}
		e.mu.Unlock()
		st.Camera = cs
		out = append(out, st)
	}
	return out
}

// FaultRequest is the body of POST /_emulator/faults.
type FaultRequest struct {
	// ChannelARN selects the channel (all faults but "throttle" and a
	// global "clear").
	ChannelARN string `json:"channelArn"`
	// Fault is one of "no-answer", "late-answer" (DelayMs), "answer-from"
	// (N), "camera-offline", "camera-online" (Mode), "drop-viewer"
	// (ClientID), "go-away" (ClientID, "" = master), "reconnect-ice-server"
	// (ClientID, "" = master), "throttle" (Op, N), "clear" (camera faults of
	// ChannelARN if given, and every throttle).
	Fault    string `json:"fault"`
	ClientID string `json:"clientId,omitempty"`
	DelayMs  int64  `json:"delayMs,omitempty"`
	N        int    `json:"n,omitempty"`
	Op       string `json:"op,omitempty"`
	Mode     string `json:"mode,omitempty"`
}

// ApplyFault applies an admin-API fault request (see FaultRequest). Camera
// answer faults add to the ones already set.
func (e *Emulator) ApplyFault(req FaultRequest) error {
	arn := req.ChannelARN
	withFault := func(change func(f *camera.Fault)) error {
		f := e.cameraFault(arn)
		change(&f)
		return e.SetCameraFault(arn, f)
	}
	switch req.Fault {
	case "no-answer":
		return withFault(func(f *camera.Fault) { f.NoAnswer = true })
	case "late-answer":
		if req.DelayMs <= 0 {
			return fmt.Errorf("%w: late-answer needs delayMs > 0", ErrInvalidArgument)
		}
		return withFault(func(f *camera.Fault) { f.AnswerDelay = time.Duration(req.DelayMs) * time.Millisecond })
	case "answer-from":
		if req.N < 1 {
			return fmt.Errorf("%w: answer-from needs n >= 1", ErrInvalidArgument)
		}
		return withFault(func(f *camera.Fault) { f.AnswerFromOffer = req.N })
	case "camera-offline":
		return e.StopCamera(arn)
	case "camera-online":
		return e.StartCamera(arn, camera.Mode(req.Mode))
	case "drop-viewer":
		return e.DropViewer(arn, req.ClientID)
	case "go-away":
		return e.SendGoAway(arn, req.ClientID)
	case "reconnect-ice-server":
		return e.SendReconnectICEServer(arn, req.ClientID)
	case "throttle":
		if !slices.Contains(throttleOps(), req.Op) {
			return fmt.Errorf("%w: unknown op %q", ErrInvalidArgument, req.Op)
		}
		e.Throttle(req.Op, req.N)
		return nil
	case "clear":
		e.clearThrottles()
		if arn == "" {
			return nil
		}
		return e.SetCameraFault(arn, camera.Fault{})
	default:
		return fmt.Errorf("%w: unknown fault %q", ErrInvalidArgument, req.Fault)
	}
}

// adminRoutes registers the admin API (dev only: no authentication).
func (e *Emulator) adminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+adminPrefix+"/counters", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, e.Counters())
	})
	mux.HandleFunc("GET "+adminPrefix+"/channels", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"channels": e.Channels()})
	})
	mux.HandleFunc("POST "+adminPrefix+"/channels", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Name              string `json:"name"`
			MessageTTLSeconds int64  `json:"messageTtlSeconds"`
			Camera            string `json:"camera"`
		}
		if !readAdmin(w, r, &req) {
			return
		}
		arn, err := e.CreateChannel(req.Name, time.Duration(req.MessageTTLSeconds)*time.Second)
		if err == nil && req.Camera != "" {
			err = e.StartCamera(arn, camera.Mode(req.Camera))
		}
		if err != nil {
			adminError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"channelArn": arn})
	})
	mux.HandleFunc("GET "+adminPrefix+"/messages", func(w http.ResponseWriter, r *http.Request) {
		arn := r.URL.Query().Get("channelArn")
		if _, ok := e.channel(arn); !ok {
			adminError(w, ErrNotFound)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"messages": e.Messages(arn)})
	})
	mux.HandleFunc("POST "+adminPrefix+"/faults", func(w http.ResponseWriter, r *http.Request) {
		var req FaultRequest
		if !readAdmin(w, r, &req) {
			return
		}
		if err := e.ApplyFault(req); err != nil {
			adminError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	mux.HandleFunc("GET "+adminPrefix+"/ca.pem", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(e.ca.caPEM)
	})
}

func readAdmin(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody))
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad JSON: " + err.Error()})
		return false
	}
	return true
}

func adminError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrInvalidArgument):
		status = http.StatusBadRequest
	case errors.Is(err, ErrExists), errors.Is(err, ErrNotConnected), errors.Is(err, ErrNoCamera):
		status = http.StatusConflict
	case errors.Is(err, ErrClosed):
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
