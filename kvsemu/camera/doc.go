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
// # Re-offers from a known client id
//
// Mode selects what happens to an offer from a client id that still has a
// session. The two sample modes do what the official samples do, measured
// and read in /work/shared/design/KVS-PROTOCOL.md section 4:
//
//   - CSample, like the KVS C SDK sample master (samples/Common.c), ignores it,
//     an ICE restart included, and logs "session still active, ignore new
//     offer that has the same client id". The session's peer connection state
//     callback marks it dead on failed, closed or disconnected (the mark
//     sticks, even if the connection recovers) and wakes the cleanup loop; a
//     cleanup pass runs on that wake-up or Config.CleanupPeriod (5 s, the C
//     sample's SAMPLE_SESSION_CLEANUP_WAIT_PERIOD) after the previous pass,
//     and only a pass removes a dead session. The next offer from that
//     client id is answered from a new peer connection.
//   - JSSample, like the KVS JS SDK sample master (examples/master.js),
//     closes the client's peer connection on any offer, an ICE restart
//     included, and answers from a new one: new ICE credentials and a new
//     DTLS certificate, so the answer's a=fingerprint differs from the one
//     the viewer holds. A viewer that applies that answer as an ICE restart
//     stays ICE-connected while DTLS never completes: black video. It must
//     answer with a new peer connection of its own.
//   - RestartCapable is a custom-firmware master that renegotiates: an ICE
//     restart (the same DTLS fingerprint as the session's remote
//     description, a different ice-ufrag) is applied to the existing peer
//     connection (SetRemoteDescription, CreateAnswer), which keeps its
//     certificate; any other offer from the client id is answered from a new
//     peer connection, as in JSSample.
//
// Every peer connection gets a certificate of its own. In every mode a
// cleanup pass also drops sessions whose peer connection failed or closed.
// At most Config.MaxSessions (10, like the C sample) sessions live at once;
// offers beyond that are ignored. The log line "offer handled" records each
// decision (outcome, and whether the offer was an ICE restart of the live
// session); Stats counts it.
//
// # Faults and ICE
//
// Camera.SetFault injects answer faults (see Fault) at any time. Taking the
// camera offline is cancelling Run's ctx.
//
// The camera gathers host candidates on Config.HostIP only (127.0.0.1 by
// default; a test can give the camera an address of its own on a test
// network), over UDP, with mDNS off; viewers may still relay through TURN.
// Config.SettingEngine can adjust the pion settings (tests shorten the ICE
// timeouts with it).
package camera
