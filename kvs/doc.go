// Package kvs is the viewer side of Amazon Kinesis Video Streams (KVS) WebRTC
// signaling: channel and endpoint resolution, ICE server lookup, the
// SigV4-presigned signaling WebSocket and its message codec, and SDP and ICE
// candidate validation.
//
// It is the only package of the service that imports aws-sdk-go-v2. Control
// plane calls (DescribeSignalingChannel, GetSignalingChannelEndpoint) go
// through service/kinesisvideo; GetIceServerConfig is one SigV4-signed POST
// made with aws/signer/v4, because the SDK's kinesisvideosignaling module is
// not available to this build.
//
// Endpoints and ICE servers are cached per channel and concurrent misses are
// coalesced into one call. ClientLimitExceededException, which the SDK does
// not retry, is retried here with capped exponential backoff and full jitter.
// Errors wrap the sentinels of errors.go so callers can branch with errors.Is.
//
// The wire protocol follows the KVS developer guide and the official JS and C
// SDKs; see https://docs.aws.amazon.com/kinesisvideostreams-webrtc-dg/latest/devguide/kvswebrtc-websocket-apis.html.
package kvs
