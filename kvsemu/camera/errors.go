package camera

import "errors"

var (
	// ErrInvalidMode reports a Mode other than CSample, JSSample or
	// RestartCapable.
	ErrInvalidMode = errors.New("invalid camera mode")
	// ErrInvalidConfig reports a Config that New cannot use.
	ErrInvalidConfig = errors.New("invalid camera config")
	// ErrRunning reports a second concurrent call to Run.
	ErrRunning = errors.New("camera already running")
)

var (
	// errBadPayload marks a signaling payload the camera cannot use.
	errBadPayload = errors.New("bad signaling payload")
	// errGoAway ends a signaling connection on GO_AWAY.
	errGoAway = errors.New("GO_AWAY received")
	// errBadClip reports an unusable embedded clip.
	errBadClip = errors.New("bad test clip")
)
