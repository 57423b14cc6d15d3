// Package camera is the simulated KVS WebRTC camera (signaling master) of the
// local KVS emulator. It is a pion peer that joins a channel over the
// emulator's signaling WebSocket, answers viewers' SDP offers with trickle
// ICE and streams a looped VP8 test clip.
package camera
