import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ViewerSession, ViewerSessionError } from "../src/index";
import { FailureReason } from "../src/gen/viewersession/v1/session_pb";
import { Renegotiate_Action, RenegotiateSchema } from "../src/gen/viewersession/v1/signaling_pb";
import { EventType, FakePeer, FakeService, SessionState, newFakePeer } from "./fakes";
import type { SignalRequest } from "../src/gen/viewersession/v1/service_pb";

const sessions: ViewerSession[] = [];
afterEach(() => {
  for (const s of sessions.splice(0)) s.stop();
  FakePeer.created = [];
});

function newSession(svc: FakeService, extra: Partial<ConstructorParameters<typeof ViewerSession>[0]> = {}) {
  const s = new ViewerSession({
    endpoint: "http://fake",
    session: "sessions/abc",
    token: "secret-token",
    transport: svc.transport,
    createPeerConnection: newFakePeer,
    mediaIntervalMs: 60_000, // no heartbeat unless a test wants one
    ackTimeoutMs: 1000,
    env: undefined,
    ...extra,
  });
  sessions.push(s);
  return s;
}

const kindSeq = (r: SignalRequest) => `${r.message.case}#${r.appSequence}`;

/** join runs the service's side of a join and returns the watch and the first Signal. */
async function join(svc: FakeService) {
  const w = await svc.watches.next();
  w.send(svc.event(EventType.CREATED, SessionState.PENDING));
  w.send(svc.event(EventType.APP_ATTACHED, SessionState.PENDING));
  const attachedAt = svc.seq;
  w.send(svc.event(EventType.STATE_CHANGED, SessionState.SIGNALING));
  const first = await svc.signals.next();
  return { w, first, attachedAt };
}

test("no Signal before the watch attached the app; then the offer is app message 1", async () => {
  const svc = new FakeService();
  let seqAtFirstSignal = -1n;
  svc.onSignal = () => {
    if (seqAtFirstSignal < 0n) seqAtFirstSignal = svc.seq;
  };
  const s = newSession(svc);
  void s.start();
  const { first, attachedAt } = await join(svc);
  assert.equal(seqAtFirstSignal, attachedAt + 1n, "the first Signal left only once the session had left PENDING");
  assert.equal(kindSeq(first), "offer#1");
  assert.equal(first.name, "sessions/abc");
  assert.equal(kindSeq(await svc.signals.next()), "candidate#2");
});

test("a Signal lost to the network is sent again with the same number after a re-dial", async () => {
  const svc = new FakeService();
  const s = newSession(svc);
  const redials: string[] = [];
  s.on("redial", (e) => redials.push(e.reason));
  void s.start();
  const { first } = await join(svc);
  assert.equal(kindSeq(first), "offer#1");
  let failed = false;
  svc.onSignal = (r) => {
    if (r.appSequence === 2n && !failed) {
      failed = true;
      throw new ConnectError("connection reset", Code.Unavailable);
    }
  };
  assert.equal(kindSeq(await svc.signals.next()), "candidate#2"); // refused by the "network"
  const w2 = await svc.watches.next();
  assert.equal(w2.after, 3n, "the new watch resumes after the last event seen");
  assert.equal(kindSeq(await svc.signals.next()), "candidate#2", "the same number again");
  assert.deepEqual(redials, ["ack timeout"]);
  FakePeer.created[0]!.setStates("checking", "connecting");
  let report: SignalRequest;
  do report = await svc.signals.next();
  while (report.message.case === "mediaReport"); // the heartbeat may come first
  assert.equal(report.message.case, "stateReport");
  assert.equal(svc.acked, report.appSequence, "every number up to the state report's handled, none skipped");
});

test("camera candidates that arrive before the answer are applied after it", async () => {
  const svc = new FakeService();
  const s = newSession(svc);
  void s.start();
  const { w } = await join(svc);
  const pc = FakePeer.created[0]!;
  w.send(svc.event(EventType.OFFER_SENT, SessionState.AWAITING_ANSWER));
  w.send(svc.event(EventType.REMOTE_CANDIDATE, SessionState.AWAITING_ANSWER, { detail: { case: "candidate", value: { candidate: "candidate:cam 1 udp 1 10.0.0.9 9 typ host", sdpMid: "0" } } }));
  w.send(svc.event(EventType.ANSWER, SessionState.CONNECTING, { detail: { case: "answer", value: { sdp: "the answer" } } }));
  assert.equal(await pc.applied.next(), "answer the answer");
  assert.equal(await pc.applied.next(), "candidate candidate:cam 1 udp 1 10.0.0.9 9 typ host");
});

test("renegotiate NEW_PEER_CONNECTION builds a new peer connection with the new ICE servers and offers from it", async () => {
  const svc = new FakeService();
  const s = newSession(svc, { mediaIntervalMs: 50 });
  void s.start();
  const { w } = await join(svc);
  const rn = create(RenegotiateSchema, {
    action: Renegotiate_Action.NEW_PEER_CONNECTION,
    iceServers: [{ urls: ["turn:10.0.0.1:3478"], username: "u", credential: "p" }],
    reason: "network changed",
  });
  w.send(svc.event(EventType.RENEGOTIATE, SessionState.RECOVERING, { detail: { case: "renegotiate", value: rn } }));
  let offer: SignalRequest;
  do offer = await svc.signals.next();
  while (!(offer.message.case === "offer" && offer.message.value.sdp === "offer 2.1"));
  assert.equal(FakePeer.created.length, 2);
  assert.equal(FakePeer.created[0]!.closed, true);
  assert.deepEqual(FakePeer.created[1]!.config.iceServers, [{ urls: ["turn:10.0.0.1:3478"], username: "u", credential: "p" }]);
  let report: SignalRequest;
  do report = await svc.signals.next();
  while (report.message.case !== "mediaReport");
  assert.equal(report.message.value.peerConnectionId, 2);
  // Numbers stayed contiguous across the change.
  assert.equal(s.counters.appSequence, Number(report.appSequence));
});

test("GOING_AWAY: the stream ends, the library resumes after the last event and drops the replay's duplicates", async () => {
  const svc = new FakeService();
  const s = newSession(svc);
  const types: string[] = [];
  s.on("timeline", (e) => types.push(`${e.sequence} ${e.type}`));
  void s.start();
  const { w } = await join(svc);
  w.send(svc.event(EventType.GOING_AWAY, SessionState.SIGNALING, { detail: { case: "goingAway", value: { reason: "drain" } } }));
  w.end();
  const w2 = await svc.watches.next();
  assert.equal(w2.after, 4n);
  // A replica that replays one event too many: dropped.
  const dup = svc.event(EventType.GOING_AWAY, SessionState.SIGNALING);
  dup.sequence = 4n;
  svc.seq = 4n;
  w2.send(dup);
  w2.send(svc.event(EventType.OWNER_CHANGED, SessionState.SIGNALING));
  const closed = new Promise((r) => s.on("closed", r));
  w2.send(svc.event(EventType.CLOSED, SessionState.CLOSED, { closeReason: 3 }));
  assert.deepEqual(await closed, { reason: "CLOSED_BY_BACKEND" });
  assert.deepEqual(types.slice(3), ["4 GOING_AWAY", "5 OWNER_CHANGED", "6 CLOSED"]);
  assert.equal(s.counters.duplicateEvents, 1);
  assert.equal(s.counters.sequenceGaps, 0);
});

test("a FAILED session rejects start with the failure's reason", async () => {
  const svc = new FakeService();
  const s = newSession(svc);
  const done = s.start();
  const { w } = await join(svc);
  w.send(
    svc.event(EventType.FAILED, SessionState.FAILED, {
      failure: { reason: FailureReason.ANSWER_TIMEOUT, message: "the camera did not answer after 2 attempts" },
    }),
  );
  await assert.rejects(done, (e: unknown) => e instanceof ViewerSessionError && e.reason === "ANSWER_TIMEOUT" && /did not answer/.test(e.message));
  assert.equal(FakePeer.created[0]!.closed, true);
});

test("a watch refused before any event stops with its typed reason", async () => {
  const svc = new FakeService();
  const s = newSession(svc);
  const done = s.start();
  const w = await svc.watches.next();
  const err = new ConnectError("session not found", Code.NotFound);
  w.end(err);
  await assert.rejects(done, (e: unknown) => e instanceof ViewerSessionError && e.code === "not_found");
});

test("a network change re-dials and tells the service at once", async () => {
  const svc = new FakeService();
  const win = new EventTarget();
  const s = newSession(svc, { env: Object.assign(win, { navigator: { onLine: true } }) });
  void s.start();
  const { w } = await join(svc);
  const seen = new Promise((r) => s.on("timeline", (e) => e.type === "OFFER_SENT" && r(e)));
  w.send(svc.event(EventType.OFFER_SENT, SessionState.AWAITING_ANSWER));
  await seen;
  win.dispatchEvent(new Event("online"));
  const w2 = await svc.watches.next();
  assert.equal(w2.after, 4n);
  let m: SignalRequest;
  do m = await svc.signals.next();
  while (m.message.case !== "networkChanged");
  assert.match(m.message.value.description, /online/);
  assert.equal(s.counters.networkChanges, 1);
});

test("the library reports an outage when decoded frames stop, and the recovery when they grow again", async () => {
  const svc = new FakeService();
  const s = newSession(svc, { stallMs: 300 });
  const next = <K extends "firstframe" | "outage" | "recovered">(k: K) => new Promise<unknown>((r) => s.on(k, r));
  const first = next("firstframe");
  void s.start();
  await join(svc);
  const pc = FakePeer.created[0]!;
  pc.frames = 5;
  await first;
  const outage = next("outage");
  await outage; // frames stand still past stallMs
  const recovered = next("recovered") as Promise<{ outageMs: number; step: string }>;
  pc.frames = 6;
  const r = await recovered;
  assert.ok(r.outageMs >= 300, `outage ${r.outageMs} ms: want at least the stall`);
  assert.equal(r.step, "", "healed without a step of the service");
});
