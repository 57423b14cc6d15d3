// Test doubles for the unit tests: an in-memory service (the real Connect
// router, so requests go through the generated code and the protocol's
// serialization) and a scripted RTCPeerConnection.

import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createRouterTransport, type Transport } from "@connectrpc/connect";
import { ViewerSessionService, type SignalRequest } from "../src/gen/viewersession/v1/service_pb";
import { SessionState } from "../src/gen/viewersession/v1/session_pb";
import { EventType, SessionEventSchema, type SessionEvent } from "../src/gen/viewersession/v1/signaling_pb";
import type { MessageInitShape } from "@bufbuild/protobuf";

/** A queue whose next() waits for the next item. */
export class Waiter<T> {
  private items: T[] = [];
  private waiters: Array<(v: T) => void> = [];
  push(v: T): void {
    const w = this.waiters.shift();
    if (w) w(v);
    else this.items.push(v);
  }
  next(timeoutMs = 3000): Promise<T> {
    const v = this.items.shift();
    if (v !== undefined) return Promise.resolve(v);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`nothing arrived within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push((x) => {
        clearTimeout(t);
        resolve(x);
      });
    });
  }
  get length(): number {
    return this.items.length;
  }
}

/** One open WatchSession stream of the fake service. */
export interface FakeWatch {
  after: bigint;
  send(e: SessionEvent): void;
  end(err?: ConnectError): void;
}

/**
 * FakeService plays the service's side: the test pushes timeline events
 * into the open watch and decides each Signal call's fate.
 */
export class FakeService {
  readonly watches = new Waiter<FakeWatch>();
  readonly signals = new Waiter<SignalRequest>();
  /** Called for each Signal; throw to refuse it. Default: take it. */
  onSignal: (req: SignalRequest) => void = () => {};
  acked = 0n;
  handled = new Set<bigint>();
  seq = 0n;
  state = SessionState.PENDING;

  readonly transport: Transport = createRouterTransport(({ service }) => {
    service(ViewerSessionService, {
      watchSession: (req, ctx) => this.watch(req.afterSequence, ctx.signal),
      signal: async (req) => {
        this.signals.push(req);
        this.onSignal(req);
        if (req.appSequence > 0n) {
          this.handled.add(req.appSequence);
          while (this.handled.has(this.acked + 1n)) this.acked++;
        }
        return { state: this.state, lastSequence: this.seq, ackedAppSequence: this.acked };
      },
    });
  });

  private async *watch(after: bigint, signal: AbortSignal): AsyncGenerator<{ event: SessionEvent }> {
    const q: Array<SessionEvent | ConnectError | null> = [];
    let wake: (() => void) | undefined;
    const push = (x: SessionEvent | ConnectError | null) => {
      q.push(x);
      wake?.();
    };
    this.watches.push({ after, send: (e) => push(e), end: (err) => push(err ?? null) });
    const aborted = new Promise<void>((r) => signal.addEventListener("abort", () => r()));
    for (;;) {
      while (q.length === 0) {
        await Promise.race([new Promise<void>((r) => (wake = r)), aborted]);
        if (signal.aborted) throw new ConnectError("aborted", Code.Canceled);
      }
      const x = q.shift();
      if (x === null || x === undefined) return;
      if (x instanceof ConnectError) throw x;
      yield { event: x };
    }
  }

  /** event makes the next timeline event. */
  event(type: EventType, state: SessionState, init: Partial<MessageInitShape<typeof SessionEventSchema>> = {}): SessionEvent {
    this.seq++;
    this.state = state;
    return create(SessionEventSchema, {
      sequence: this.seq,
      time: timestampFromMs(Date.now()),
      type,
      state,
      attempt: 1,
      clientId: "viewer-1",
      message: EventType[type],
      ackedAppSequence: this.acked,
      ...init,
    } as MessageInitShape<typeof SessionEventSchema>);
  }
}

/** FakePeer is the subset of RTCPeerConnection the library uses, scripted. */
export class FakePeer {
  static created: FakePeer[] = [];
  iceConnectionState: RTCIceConnectionState = "new";
  connectionState: RTCPeerConnectionState = "new";
  onicecandidate: ((ev: { candidate: Partial<RTCIceCandidate> | null }) => void) | null = null;
  oniceconnectionstatechange: (() => void) | null = null;
  onconnectionstatechange: (() => void) | null = null;
  ontrack: (() => void) | null = null;
  offers: RTCOfferOptions[] = [];
  remote: RTCSessionDescriptionInit[] = [];
  candidates: RTCIceCandidateInit[] = [];
  closed = false;
  frames = 0;
  config: RTCConfiguration;
  /** What the library applied, in order: "answer <sdp>", "candidate <c>". */
  readonly applied = new Waiter<string>();

  constructor(config: RTCConfiguration) {
    this.config = config;
    FakePeer.created.push(this);
  }
  addTransceiver(): void {}
  async createOffer(o?: RTCOfferOptions): Promise<RTCSessionDescriptionInit> {
    this.offers.push(o ?? {});
    return { type: "offer", sdp: `offer ${FakePeer.created.indexOf(this) + 1}.${this.offers.length}` };
  }
  async setLocalDescription(): Promise<void> {
    // Gathering: one host candidate, then the end.
    queueMicrotask(() => {
      this.onicecandidate?.({ candidate: { candidate: `candidate:1 1 udp 1 10.0.0.2 ${5000 + this.offers.length} typ host`, sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "u" } });
      this.onicecandidate?.({ candidate: null });
    });
  }
  async setRemoteDescription(d: RTCSessionDescriptionInit): Promise<void> {
    this.remote.push(d);
    this.applied.push(`answer ${d.sdp}`);
  }
  async addIceCandidate(c: RTCIceCandidateInit): Promise<void> {
    this.candidates.push(c);
    this.applied.push(`candidate ${c.candidate}`);
  }
  getConfiguration(): RTCConfiguration {
    return this.config;
  }
  setConfiguration(c: RTCConfiguration): void {
    this.config = c;
  }
  async getStats(): Promise<Map<string, unknown>> {
    return new Map([["in", { id: "in", type: "inbound-rtp", kind: "video", packetsReceived: this.frames * 3, bytesReceived: this.frames * 3000, framesDecoded: this.frames }]]);
  }
  setStates(ice: RTCIceConnectionState, peer: RTCPeerConnectionState): void {
    this.iceConnectionState = ice;
    this.connectionState = peer;
    this.oniceconnectionstatechange?.();
    this.onconnectionstatechange?.();
  }
  close(): void {
    this.closed = true;
  }
}

export const newFakePeer = (c: RTCConfiguration) => new FakePeer(c) as unknown as RTCPeerConnection;

export { EventType, SessionState };
