package main

import "errors"

var (
	// errUsage is wrapped by every command-line error: main prints the
	// message and exits 2.
	errUsage = errors.New("usage")
	// errNotConnected: the session never reached CONNECTED.
	errNotConnected = errors.New("the session never reached CONNECTED")
	// errNoMedia: the session connected but no video arrived.
	errNoMedia = errors.New("the session connected but no video packets arrived")
	// errDevAPI: the server's dev proxy to the KVS emulator refused a call.
	errDevAPI = errors.New("emulator dev API")
	// errNotFlowing: video was not flowing when the watch ended.
	errNotFlowing = errors.New("video is not flowing at the end")
	// errUnrecovered: an outage began and no RECOVERED followed.
	errUnrecovered = errors.New("an outage never recovered")
	// errServerGone: the service stopped answering and the thin client
	// gave up re-dialing.
	errServerGone = errors.New("the service is gone")
	// errFalseRecovery: a RECOVERED was not followed by video.
	errFalseRecovery = errors.New("false recovery")
)
