package kvsemu

import "errors"

var (
	// ErrClosed reports a call on a closed Emulator.
	ErrClosed = errors.New("kvsemu: emulator closed")
	// ErrNotFound reports an unknown channel.
	ErrNotFound = errors.New("kvsemu: channel not found")
	// ErrExists reports a channel name already in use.
	ErrExists = errors.New("kvsemu: channel already exists")
	// ErrInvalidArgument reports a bad channel name, TTL, mode or fault.
	ErrInvalidArgument = errors.New("kvsemu: invalid argument")
	// ErrNotConnected reports a fault aimed at a master or viewer that has
	// no live signaling connection.
	ErrNotConnected = errors.New("kvsemu: client not connected")
	// ErrNoCamera reports a camera operation on a channel without a running
	// simulated camera.
	ErrNoCamera = errors.New("kvsemu: no camera running")

	// errChannelFull reports a viewer refused because the channel has
	// MaxViewers viewers (a concurrent connect took the last slot).
	errChannelFull = errors.New("kvsemu: too many viewers")
)
