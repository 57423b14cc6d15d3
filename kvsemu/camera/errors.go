package camera

import "errors"

var (
	// ErrInvalidMode reports a Mode other than CSample or JSSample.
	ErrInvalidMode = errors.New("invalid camera mode")
	// ErrInvalidConfig reports a Config that New cannot use.
	ErrInvalidConfig = errors.New("invalid camera config")
	// ErrRunning reports a second concurrent call to Run.
	ErrRunning = errors.New("camera already running")
)
