import { test } from "node:test";
import assert from "node:assert/strict";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";
import { decodeErrorInfo, errorInfo, toError, transient } from "../src/errors";
import { readMedia } from "../src/media";
import { watchNetwork } from "../src/network";

function errorInfoBytes(reason: string, domain: string, meta: Record<string, string> = {}): Uint8Array {
  const w = new BinaryWriter();
  w.tag(1, 2).string(reason);
  w.tag(2, 2).string(domain);
  for (const [k, v] of Object.entries(meta)) {
    w.tag(3, 2).fork().tag(1, 2).string(k).tag(2, 2).string(v).join();
  }
  return w.finish();
}

function wireError(code: Code, reason?: string): ConnectError {
  const e = new ConnectError("refused", code);
  if (reason) e.details = [{ type: "google.rpc.ErrorInfo", value: errorInfoBytes(reason, "viewersession.acme.dev") }];
  e.isWireError = true;
  return e;
}

test("ErrorInfo is decoded by hand, metadata included", () => {
  assert.deepEqual(decodeErrorInfo(errorInfoBytes("CHANNEL_FULL", "viewersession.acme.dev", { channel: "demo" })), {
    reason: "CHANNEL_FULL",
    domain: "viewersession.acme.dev",
    metadata: { channel: "demo" },
  });
  assert.equal(errorInfo(wireError(Code.NotFound)), undefined);
});

test("errors are typed by their ErrorInfo reason", () => {
  const e = toError(wireError(Code.NotFound, "SESSION_NOT_FOUND"));
  assert.equal(e.reason, "SESSION_NOT_FOUND");
  assert.equal(e.code, "not_found");
  assert.equal(e.retryable, false);
  const net = toError(new TypeError("Failed to fetch"));
  assert.equal(net.reason, "NETWORK");
  assert.equal(net.retryable, true);
  assert.equal(toError(wireError(Code.Unavailable, "SHUTTING_DOWN")).retryable, true);
});

test("transient: the transport's failures and UNAVAILABLE, not the service's refusals", () => {
  const cases: Array<[unknown, boolean]> = [
    [new TypeError("Failed to fetch"), true],
    [new ConnectError("timeout", Code.DeadlineExceeded), true],
    [wireError(Code.Unavailable, "SHUTTING_DOWN"), true],
    [wireError(Code.FailedPrecondition, "OFFER_IN_FLIGHT"), false],
    [wireError(Code.PermissionDenied, "PERMISSION_DENIED"), false],
    [wireError(Code.DeadlineExceeded, "ANSWER_TIMEOUT"), false],
    [wireError(Code.Internal, "INTERNAL"), false],
  ];
  for (const [err, want] of cases) {
    assert.equal(transient(err), want, String(err));
  }
});

test("readMedia sums inbound video and derives rates from the previous reading", () => {
  const stats = (frames: number, bytes: number) => [
    { id: "in", type: "inbound-rtp", kind: "video", packetsReceived: frames * 2, bytesReceived: bytes, framesDecoded: frames, frameWidth: 640, frameHeight: 480, codecId: "c" },
    { id: "au", type: "inbound-rtp", kind: "audio", packetsReceived: 1000, bytesReceived: 1000 },
    { id: "c", type: "codec", mimeType: "video/VP8" },
    { id: "t", type: "transport", selectedCandidatePairId: "p" },
    { id: "p", type: "candidate-pair", localCandidateId: "l", remoteCandidateId: "r", currentRoundTripTime: 0.002 },
    { id: "l", type: "local-candidate", candidateType: "host" },
    { id: "r", type: "remote-candidate", candidateType: "prflx" },
  ];
  const a = readMedia(stats(10, 10_000), 1, 1000);
  const b = readMedia(stats(25, 30_000), 1, 2000, a);
  assert.deepEqual([b.packetsReceived, b.framesDecoded, b.framesPerSecond, b.bitrate], [50, 25, 15, 160_000]);
  assert.deepEqual([b.codec, b.localCandidateType, b.remoteCandidateType, b.frameWidth], ["video/VP8", "host", "prflx", 640]);
  const c = readMedia(stats(3, 100), 2, 3000, b);
  assert.equal(c.framesPerSecond, 0, "a new peer connection has no rate yet");
});

test("watchNetwork reports online and a change of connection type, not a new bandwidth estimate", () => {
  const win = new EventTarget();
  const conn = Object.assign(new EventTarget(), { type: "wifi", effectiveType: "4g" });
  const env = Object.assign(win, { navigator: { onLine: true, connection: conn } });
  const seen: string[] = [];
  const stop = watchNetwork(env, (c) => seen.push(`${c.kind}: ${c.description}`));
  conn.dispatchEvent(new Event("change")); // same type: a bandwidth estimate
  conn.type = "cellular";
  conn.dispatchEvent(new Event("change"));
  win.dispatchEvent(new Event("offline"));
  win.dispatchEvent(new Event("online"));
  stop();
  win.dispatchEvent(new Event("online"));
  assert.deepEqual(seen, ["connection: connection wifi -> cellular", "offline: browser offline", "online: browser online (cellular)"]);
});
