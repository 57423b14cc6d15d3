// Package kvsemu is a local Amazon Kinesis Video Streams WebRTC signaling
// service: the test bed of the viewer session service and the default of
// its -dev mode. It speaks the real wire protocol (KVS-PROTOCOL.md), so
// aws-sdk-go-v2, the service's kvs client and the official SDKs talk to it
// unchanged. It shares no code with package kvs: they are two independent
// implementations of one protocol.
//
// # What it serves
//
// Everything is on one TLS listener (HTTP/1.1 only) whose certificate is
// issued by a CA the emulator generates at Start (CACertPEM, CertPool):
//
//   - Control plane, REST-JSON POST, SigV4 header auth (service
//     "kinesisvideo") against the one configured access key:
//     /createSignalingChannel, /describeSignalingChannel,
//     /getSignalingChannelEndpoint, /deleteSignalingChannel; and
//     /v1/get-ice-server-config, the signaling service's HTTPS endpoint.
//     Errors carry the status, X-Amzn-ErrorType and {"__type","Message"}:
//     InvalidArgumentException, ClientLimitExceededException and
//     ResourceInUseException 400, AccessDeniedException (control plane) or
//     NotAuthorizedException (GetIceServerConfig) 401,
//     ResourceNotFoundException 404. Each path also answers an unsigned
//     OPTIONS CORS preflight, and every response carries
//     Access-Control-Allow-Origin, so browser SDKs work against it.
//   - Signaling WebSocket at "/" with X-Amz-ChannelARN (and X-Amz-ClientId
//     for a viewer), SigV4 query auth (403 AccessDeniedException when the
//     signature is bad or expired). Viewer messages go to the master with
//     senderClientId; master messages go to the viewer named by
//     recipientClientId, without senderClientId. Keys are read
//     case-insensitively; unknown keys, foreign frames, binary and empty
//     frames are ignored. A STATUS_RESPONSE is sent only on error and only
//     when the frame had a correlationId.
//   - TURN (pion/turn) on Config.TURNAddr (default 127.0.0.1, ephemeral UDP
//     and TCP ports), relaying on that address, with
//     REST-style credentials "<expiry>:<base64("v1:"+channelARN)>", valid
//     Config.TURNTTL (5 min); expired credentials are refused. Clients add
//     the STUN URL themselves, as with KVS.
//   - The admin API under /_emulator/ (below).
//
// # Limits
//
// Limits holds every KVS limit of KVS-PROTOCOL.md section 3, configurable:
// one master per channel and 10 viewers (the newest connection with the same
// role and client id wins: the older socket is closed with 1000 "replaced by
// a newer connection"); ConnectAsViewer and ConnectAsMaster 3/s per channel
// (refused at the upgrade with HTTP 400 ClientLimitExceededException);
// SDP 5/s and ICE 20/s per connection and payloads up to 10000 bytes (an
// excess is dropped, with a STATUS_RESPONSE if a correlationId was given);
// DescribeSignalingChannel and GetIceServerConfig 5/s per channel. A
// connection that sends no signaling message for IdleTimeout (10 min) is
// closed with 1001; WebSocket pings are answered but do not count as
// activity (the conservative reading of the unconfirmed KVS behaviour).
// GO_AWAY is sent GoAwayBefore (1 min) before MaxConnection (1 h), when the
// socket is closed with 1001. Messages for an absent recipient are kept for
// the channel's MessageTtlSeconds and delivered when it connects; an
// undelivered SDP message is overwritten by a newer one of the same type
// for the same viewer.
//
// # Simulated cameras and faults
//
// StartCamera connects a package camera master (a pion peer sending a looped
// VP8 clip) over the emulator's own WSS, in a camera.Mode: c-sample and
// js-sample behave like the official KVS samples on a re-offer (ignore it
// until cleanup; replace the peer connection), restart-capable applies ICE
// restarts on the same peer connection. Cameras gather ICE candidates on
// Config.CameraIP only (default 127.0.0.1), so a test can give them a host
// of their own. Faults, from Go or the admin API:
// camera answer faults (SetCameraFault: no answer, late answer, answer from
// the Nth offer), camera offline (StopCamera), DropViewer, SendGoAway,
// SendReconnectICEServer, Throttle. Counters and Messages show what
// happened.
//
// # Admin API (development only: no authentication)
//
// JSON over the same listener, no SigV4:
//
//	GET  /_emulator/counters                  Counters
//	GET  /_emulator/channels                  {"channels":[ChannelState...]}
//	POST /_emulator/channels                  {"name","messageTtlSeconds","camera":"c-sample"|"js-sample"|"restart-capable"|""} -> {"channelArn"}
//	GET  /_emulator/messages?channelArn=ARN   {"messages":[MessageRecord...]}
//	POST /_emulator/faults                    FaultRequest -> {"ok":true}
//	GET  /_emulator/ca.pem                    the CA certificate
//
// FaultRequest is {"channelArn", "fault", "clientId", "delayMs", "n", "op",
// "mode"} with fault one of no-answer, late-answer (delayMs), answer-from
// (n), camera-offline, camera-online (mode), drop-viewer (clientId), go-away
// and reconnect-ice-server (clientId, "" = the master), throttle (op, n),
// clear. Errors are {"error": "..."} with 400, 404, 409 or 503.
package kvsemu
