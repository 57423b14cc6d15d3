// Package thinclient is a thin viewer app for the Viewer Session Service: a
// real pion peer connection (receive-only video) driven entirely by the
// service, the way a phone app would be. End-to-end tests use it, and so
// will the viewerctl command.
//
// A Client joins its session (Connect mode: one bidi Connect stream; Signal
// mode: unary Signal calls plus a WatchSession stream), builds its peer
// connection with the session's ICE servers, sends its offer and trickles
// its candidates, applies the camera's answer and candidates, reports every
// ICE and peer-connection state change, and follows the service's
// instructions: renegotiate (ICE restart on the same peer connection, or a
// new peer connection) and going-away (reopen the stream after the last
// sequence seen). A stream that drops is resumed the same way. Both modes
// drive the same logic: the client acts on timeline events, which carry the
// answer, candidates, renegotiate and going-away in both modes, and keeps
// the timeline contiguous and free of duplicates.
//
// SwitchNet simulates a network change on loopback: the client's traffic
// uses one 127.x address at a time, and switching retires the old one.
//
// The client never logs the session token or TURN credentials.
package thinclient
