// Package camera is the simulated KVS WebRTC camera (the signaling channel's
// MASTER) of the local KVS emulator. It is written from
// /work/shared/design/KVS-PROTOCOL.md and shares no code with package kvs.
//
// A Camera dials the emulator's signaling WebSocket through Config.Dial,
// answers each viewer's SDP_OFFER with a pion peer connection, trickles its
// ICE candidates as ICE_CANDIDATE frames, and streams a looped VP8 test clip
// (testdata/clip.ivf, 160x120 at 15 fps) on one shared video track.
//
// # Wire format
//
// Inbound frames are {"senderClientId","messageType","messagePayload"}; keys
// are matched case-insensitively and unknown keys ignored. Empty, binary,
// unparsable and foreign frames (such as API Gateway's
// {"message":"Endpoint request timed out",...}) are ignored; STATUS_RESPONSE
// and RECONNECT_ICE_SERVER are only logged (the camera has no TURN
// configuration to refresh); GO_AWAY closes the socket and reconnects.
// Outbound frames are {"action","messagePayload","recipientClientId"} with
// SDP_ANSWER or ICE_CANDIDATE actions; payloads are padded base64 of
// {"type":"answer","sdp":...} or {"candidate","sdpMid","sdpMLineIndex"}. The
// answer is always sent before the candidates gathered for it. See
// https://docs.aws.amazon.com/kinesisvideostreams-webrtc-dg/latest/devguide/kvswebrtc-websocket-apis-7.html.
//
// ICE candidates from a viewer that arrive before its offer are kept for
// Config.PendingCandidateTTL (20 s, like the C sample) and applied when the
// offer is answered.
//
// # Reconnects
//
// When the socket closes or GO_AWAY arrives, Run dials again while its ctx
// lives. Peer connections are not tied to the socket and survive the
// reconnect; frames queued while disconnected go out on the next socket.
//
// # Re-offers from a live client id
//
// Mode selects what happens to an offer from a client id that still has a
// session:
//
//   - CSample, like the KVS C SDK sample master (samples/Common.c), ignores it
//     and logs "session still active, ignore new offer that has the same
//     client id". A session is removed only when the periodic cleanup
//     (Config.CleanupPeriod, 5 s like the C sample) finds its peer connection
//     failed, closed or disconnected. So a viewer that reconnects quickly with
//     the same client id, or restarts ICE, gets no answer.
//   - JSSample, like the KVS JS SDK sample master (examples/master.js), closes
//     the old peer connection and answers with a new one. One exception,
//     which the JS sample does not make: an ICE restart of the same viewer
//     peer connection (same DTLS fingerprint as the live session's remote
//     description, different ice-ufrag) is applied to the existing peer
//     connection (SetRemoteDescription, CreateAnswer). A browser cannot
//     renegotiate DTLS within one peer connection, so a master that is to
//     survive a viewer's ICE restart with the same client id must keep its
//     peer connection; this mode is that master.
//
// The dead-session cleanup runs in both modes. At most Config.MaxSessions
// (10, like the C sample) sessions live at once; offers beyond that are
// ignored.
//
// # Faults and ICE
//
// Camera.SetFault injects answer faults (see Fault) at any time. Taking the
// camera offline is cancelling Run's ctx.
//
// The camera gathers host candidates on 127.0.0.1 over UDP4 only, with mDNS
// off; viewers may still relay through TURN. Config.SettingEngine can adjust
// the pion settings (tests shorten the ICE timeouts with it).
package camera
