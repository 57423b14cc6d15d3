// ViewerSession: the app's half of the Viewer Session Service in a browser.

import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { ViewerSessionService } from "./gen/viewersession/v1/service_pb";
import { CloseReason, FailureReason, SessionState, type IceServer } from "./gen/viewersession/v1/session_pb";
import {
  EventType,
  IceConnectionState,
  PeerConnectionState,
  RecoveryStep,
  Renegotiate_Action,
  type IceCandidate,
  type Renegotiate,
  type SessionEvent,
} from "./gen/viewersession/v1/signaling_pb";
import { ViewerSessionError, toError, transient } from "./errors";
import { readMedia, noMedia, type MediaStats } from "./media";
import { watchNetwork, type NetworkEnv } from "./network";
import { Outbox, type AppMessage, type OutMessage } from "./outbox";
import { Timeline } from "./timeline";

/** How the library talks to the web port. */
export type Protocol = "connect" | "connect-json" | "grpc-web";

/** Options of a ViewerSession. endpoint, session and token are required. */
export interface ViewerSessionOptions {
  /** Base URL of the service's web port, e.g. "https://vs.example.com" (or "/" on the same origin). */
  endpoint: string;
  /** The session's name, "sessions/{id}", from CreateSession. */
  session: string;
  /** The session token from CreateSession. Secret: sent as `Authorization: Bearer`, never logged. */
  token: string;
  /** The element that plays the camera's video (muted autoplay is the page's choice). */
  video?: HTMLVideoElement;
  /** Connect binary (default), Connect JSON, or gRPC-Web binary. */
  protocol?: Protocol;
  /** The session's ICE servers as CreateSession returned them (Session.ice_servers); secret. */
  iceServers?: IceServerInit[];
  /** Extra RTCPeerConnection settings (e.g. iceTransportPolicy "relay"); iceServers come from the service. */
  rtcConfiguration?: RTCConfiguration;
  /** How long a message may wait for the service's acknowledgement before the library re-dials. Default 2500 ms. */
  ackTimeoutMs?: number;
  /** How often the library reports media progress (its heartbeat). Default 1000 ms. */
  mediaIntervalMs?: number;
  /** How long decoded frames may stand still before the library reports an outage. Default 1000 ms. */
  stallMs?: number;
  /** Send leave when the page is hidden for good (pagehide). Default true. */
  leaveOnPageHide?: boolean;
  /** Watch online/offline and navigator.connection. Default true. */
  watchNetwork?: boolean;
  /** Test seams: the transport, the peer connection factory, the window, the clock. */
  transport?: Transport;
  createPeerConnection?: (config: RTCConfiguration) => RTCPeerConnection;
  env?: (NetworkEnv & Partial<Pick<Window, "setTimeout" | "clearTimeout">>) | undefined;
  now?: () => number;
}

/** An ICE server as CreateSession's JSON or the /dev/session endpoint gives it. */
export interface IceServerInit {
  urls: string[] | string;
  username?: string;
  credential?: string;
}

/** One entry of the session's timeline, for the page. */
export interface TimelineEntry {
  sequence: number;
  time: Date;
  /** EventType name, e.g. "OFFER_SENT". */
  type: string;
  /** SessionState name after the event, e.g. "AWAITING_ANSWER". */
  state: string;
  attempt: number;
  clientId: string;
  /** Plain words for a person. */
  message: string;
  /** Failure reason name (FAILED, ANSWER_TIMEOUT, SIGNALING_ERROR), else "". */
  reason: string;
  /** CLOSED and FAILED: the CloseReason name ("CLIENT_LEFT", ...), else "". */
  closeReason: string;
  /** RECOVERY_STARTED / RECOVERED: the ladder's step ("ICE_RESTART", ...), else "". */
  step: string;
  /** RECOVERED: the outage the user saw, ms; else 0. */
  outageMs: number;
  /** The event as the service sent it. */
  raw: SessionEvent;
}

/** What a ViewerSession tells the page. */
export interface ViewerSessionEvents {
  /** The session's state changed ("CONNECTED", "RECOVERING", ...). */
  state: { state: string; previous: string };
  /** A new timeline event, in order, without duplicates. */
  timeline: TimelineEntry;
  /** Media counters of the current peer connection, once per mediaIntervalMs. */
  media: MediaStats;
  /** The first decoded frame: ms since the page's time origin and since start(). */
  firstframe: { sincePageLoadMs: number; sinceStartMs: number };
  /** The video stopped (media stalled, or a recovery began). */
  outage: { cause: string };
  /** The video is back; outageMs is the black video the user saw. */
  recovered: { outageMs: number; step: string };
  /** The browser reported a network change and the library acted on it. */
  network: { description: string };
  /** The library abandoned its streams and dialed again. */
  redial: { reason: string };
  /** A message the service refused (the session goes on). */
  warning: ViewerSessionError;
  /** The session ended FAILED, or could not be reached: terminal. */
  error: ViewerSessionError;
  /** The session ended CLOSED (reason: CloseReason name). */
  closed: { reason: string };
}

type Listener<K extends keyof ViewerSessionEvents> = (ev: ViewerSessionEvents[K]) => void;

/** Re-dial reasons. */
export const REDIAL_ACK_TIMEOUT = "ack timeout";
export const REDIAL_NETWORK_CHANGE = "network change";
export const REDIAL_STREAM_ERROR = "stream error";
/** The service has events the watch did not deliver (a stream stuck on a dead path). */
export const REDIAL_WATCH_BEHIND = "watch behind";

const defaults = { ackTimeoutMs: 2500, mediaIntervalMs: 1000, stallMs: 1000 };
const firstBackoffMs = 25;
const maxBackoffMs = 2000;
/** Streams in a row that may fail before the library gives up (about 35 s with the backoff). */
const maxStreamFailures = 20;
/** Until the first frame, media is read this often so that the first frame is timed closely. */
const firstFramePollMs = 40;
/** After it, this often: stalls are seen within a few hundred ms. */
const mediaPollMs = 250;
/** A broken stream and an ICE disconnect this close together are one network change. */
const networkHintWindowMs = 5000;

/**
 * ViewerSession does the app's half of a viewer session in a browser: it
 * watches the session (WatchSession) and sends the app's messages (Signal),
 * numbered and resent until acknowledged; it builds the RTCPeerConnection
 * with the session's ICE servers, offers, trickles candidates, applies the
 * camera's answer and candidates, reports connection states and media
 * progress (its heartbeat), follows renegotiate (ICE restart or a new peer
 * connection) and going-away, resumes after the last event it saw when a
 * stream breaks, tells the service about network changes, and leaves on
 * pagehide.
 *
 *     const s = new ViewerSession({ endpoint, session, token, video });
 *     s.on("state", (e) => console.log(e.state));
 *     await s.start(); // resolves when the session closes, rejects when it fails
 */
export class ViewerSession {
  private readonly opts: Required<Pick<ViewerSessionOptions, "ackTimeoutMs" | "mediaIntervalMs" | "stallMs">> & ViewerSessionOptions;
  private readonly client: Client<typeof ViewerSessionService>;
  private readonly leaveClient: Client<typeof ViewerSessionService>;
  private readonly headers: Record<string, string>;
  private readonly listeners = new Map<keyof ViewerSessionEvents, Set<(ev: never) => void>>();
  private readonly outbox = new Outbox();
  private readonly timeline = new Timeline();
  private readonly now: () => number;
  private readonly env: ViewerSessionOptions["env"];

  private started = false;
  private ended = false;
  private startedAt = 0;
  private settle?: { resolve: () => void; reject: (e: ViewerSessionError) => void };
  private cleanups: Array<() => void> = [];

  // The connection generation: a re-dial abandons every call of the
  // previous one (the watch and the Signal call in flight).
  private conn = 1;
  private connAbort = new AbortController();
  private wakeSender?: () => void;
  private wakeWatch?: () => void;

  private attachSeen = false;
  private joined = false;
  private watchAfter = 0n;
  private lastState = "";
  // The outage the user sees: decoded frames that stopped growing.
  private inOutage = false;
  private lastProgressAt = 0;
  private lastFrames = 0;
  private recoveryStep = "";
  // The watch is behind the service since (a Signal answer showed a newer event).
  private behindSince = -Infinity;
  private lastStreamError = -Infinity;
  private lastIceTrouble = -Infinity;
  private networkHinted = false;

  // Serializes event handling and peer connection work (both async).
  private serial: Promise<void> = Promise.resolve();
  private pc?: RTCPeerConnection;
  private pcId = 0;
  private gen = 0;
  private ice: RTCIceServer[];
  private awaitingAnswer = false;
  private heldCandidates: RTCIceCandidateInit[] = [];
  // Local candidates gathered before their offer was queued (gathering
  // starts inside setLocalDescription): they follow the offer.
  private offeredGen = 0;
  private earlyCandidates: Array<{ gen: number; message: AppMessage }> = [];
  private reported = "";
  private media: MediaStats = noMedia;
  private firstFrame = false;
  private mediaTimer?: ReturnType<typeof setTimeout>;

  constructor(options: ViewerSessionOptions) {
    if (!options.endpoint && !options.transport) {
      throw new ViewerSessionError("INVALID_ARGUMENT", "endpoint is required");
    }
    if (!/^sessions\/[^/]+$/.test(options.session ?? "")) {
      throw new ViewerSessionError("INVALID_ARGUMENT", `session must be sessions/{id}, got ${JSON.stringify(options.session)}`);
    }
    if (!options.token) {
      throw new ViewerSessionError("INVALID_ARGUMENT", "token is required");
    }
    this.opts = { ...defaults, ...options };
    this.now = options.now ?? (() => performance.now());
    this.env = options.env ?? (typeof window !== "undefined" ? window : undefined);
    this.headers = { Authorization: `Bearer ${options.token}` };
    this.ice = (options.iceServers ?? []).map(iceServerInit);
    const transport = options.transport ?? newTransport(options.endpoint, options.protocol ?? "connect", false);
    this.client = createClient(ViewerSessionService, transport);
    this.leaveClient = options.transport
      ? this.client
      : createClient(ViewerSessionService, newTransport(options.endpoint, options.protocol ?? "connect", true));
  }

  /** on adds a listener and returns a function that removes it. */
  on<K extends keyof ViewerSessionEvents>(type: K, listener: Listener<K>): () => void {
    let set = this.listeners.get(type);
    if (!set) {
      set = new Set();
      this.listeners.set(type, set);
    }
    set.add(listener as (ev: never) => void);
    return () => set.delete(listener as (ev: never) => void);
  }

  /** The session's state name ("" before the first event). */
  get state(): string {
    return this.lastState;
  }

  /** The newest media counters. */
  get stats(): MediaStats {
    return this.media;
  }

  /** Counters of the protocol, for tests and the demo's details. */
  get counters() {
    return {
      lastSequence: Number(this.timeline.last),
      sequenceGaps: this.timeline.gaps,
      duplicateEvents: this.timeline.duplicates,
      appSequence: this.outbox.last,
      ackedAppSequence: this.outbox.acked,
      unacked: this.outbox.pending,
      peerConnections: this.pcId,
      redials: this.redials,
      networkChanges: this.networkChanges,
    };
  }
  private redials = 0;
  private networkChanges = 0;

  /** The current peer connection, if any (read-only use: getStats, states). */
  get peerConnection(): RTCPeerConnection | undefined {
    return this.pc;
  }

  /**
   * start joins the session and runs it. The promise resolves when the
   * session ends CLOSED and rejects with a ViewerSessionError when it ends
   * FAILED (reason = the failure's, e.g. ANSWER_TIMEOUT) or cannot be
   * joined (e.g. SESSION_NOT_FOUND, UNAUTHENTICATED) or reached (NETWORK).
   */
  start(): Promise<void> {
    if (this.started) {
      return Promise.reject(new ViewerSessionError("INVALID_ARGUMENT", "start called twice"));
    }
    this.started = true;
    this.startedAt = this.now();
    const done = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    done.catch(() => {}); // the page may listen to "error" instead
    const env = this.env;
    if (env && this.opts.watchNetwork !== false) {
      this.cleanups.push(
        watchNetwork(env, (c) => {
          if (c.kind === "offline") {
            this.lastStreamError = this.now();
            return;
          }
          this.networkChanged(c.description);
        }),
      );
    }
    if (env && this.opts.leaveOnPageHide !== false) {
      const hide = (ev: Event) => {
        if (!(ev as PageTransitionEvent).persisted) {
          void this.leave();
        }
      };
      env.addEventListener("pagehide", hide as () => void);
      this.cleanups.push(() => env.removeEventListener("pagehide", hide as () => void));
    }
    void this.watchLoop();
    void this.sendLoop();
    this.scheduleMedia(firstFramePollMs);
    return done;
  }

  /**
   * leave ends the session from the app (CLOSED, CLIENT_LEFT) and stops
   * everything. Safe to call from pagehide: the call is a keepalive fetch.
   */
  async leave(): Promise<void> {
    if (this.ended) {
      return;
    }
    const m = this.outbox.take({ case: "leave", value: {} });
    this.finish();
    try {
      await this.leaveClient.signal(
        { name: this.opts.session, appSequence: BigInt(m.seq), message: m.message },
        { headers: this.headers, timeoutMs: 5000 },
      );
    } catch (err) {
      const e = toError(err);
      if (e.reason !== "SESSION_CLOSED") {
        throw e;
      }
    }
    this.emit("closed", { reason: "CLIENT_LEFT" });
    this.settle?.resolve();
  }

  /**
   * stop stops the library without leaving: the session outlives the page
   * for its resume grace (a reload can resume it with the same token).
   */
  stop(): void {
    if (this.ended) {
      return;
    }
    this.finish();
    this.settle?.reject(new ViewerSessionError("STOPPED", "stopped by the page"));
  }

  /**
   * networkChanged tells the service that the network changed (the
   * library calls it itself on the browser's signals): it re-dials at once
   * and sends network_changed, so that recovery starts without waiting for
   * ICE to time out.
   */
  networkChanged(description: string): void {
    if (this.ended) {
      return;
    }
    this.networkChanges++;
    this.emit("network", { description });
    this.redial(REDIAL_NETWORK_CHANGE);
    if (this.joined) {
      this.outbox.push({ case: "networkChanged", value: { description: description.slice(0, 256) } });
      this.wakeSender?.();
    }
  }

  // ---- streams ----

  private async watchLoop(): Promise<void> {
    let failures = 0;
    while (!this.ended) {
      const conn = this.conn;
      const signal = this.connAbort.signal;
      const after = this.timeline.last;
      let progressed = false;
      let failure: ViewerSessionError | undefined;
      this.watchAfter = after;
      try {
        const stream = this.client.watchSession({ name: this.opts.session, afterSequence: after }, { headers: this.headers, signal });
        for await (const res of stream) {
          if (res.event && this.onEvent(res.event)) {
            progressed = true;
          }
        }
      } catch (err) {
        failure = toError(err);
        if (!this.ended && conn === this.conn && !signal.aborted) {
          if (!progressed && !transient(err)) {
            this.fail(failure);
            return;
          }
          this.streamBroke();
        }
      }
      await this.serial;
      if (this.ended) {
        return;
      }
      if (conn !== this.conn) {
        failures = 0;
        continue; // re-dialed: open the next stream at once
      }
      failures = progressed ? 0 : failures + 1;
      if (failures > maxStreamFailures) {
        this.fail(new ViewerSessionError("NETWORK", `the service could not be reached: ${failure?.message ?? "the stream kept ending"}`, failure?.code, true, failure));
        return;
      }
      if (failures > 0) {
        await this.sleep(Math.min(firstBackoffMs * 2 ** (failures - 1), maxBackoffMs), (w) => (this.wakeWatch = w));
      }
    }
  }

  private async sendLoop(): Promise<void> {
    let attempts = 0;
    while (!this.ended) {
      const m = this.joined ? this.outbox.next(this.conn, this.now()) : undefined;
      if (!m) {
        await new Promise<void>((wake) => (this.wakeSender = wake));
        continue;
      }
      const conn = this.conn;
      try {
        const res = await this.client.signal(
          { name: this.opts.session, appSequence: BigInt(m.seq), message: m.message },
          { headers: this.headers, signal: this.connAbort.signal, timeoutMs: this.opts.ackTimeoutMs },
        );
        attempts = 0;
        this.outbox.ack(Number(res.ackedAppSequence));
        this.outbox.settle(m);
        if (res.lastSequence > this.timeline.last) {
          if (this.behindSince === -Infinity) this.behindSince = this.now();
        } else {
          this.behindSince = -Infinity;
        }
      } catch (err) {
        if (this.ended) {
          return;
        }
        if (conn !== this.conn) {
          continue; // abandoned by a re-dial: the message is sent again on the new one
        }
        if (transient(err)) {
          attempts++;
          this.redial(REDIAL_ACK_TIMEOUT);
          await this.sleep(Math.min(firstBackoffMs * 2 ** (attempts - 1), maxBackoffMs), (w) => (this.wakeSender = w));
          continue;
        }
        this.refused(m, toError(err));
      }
    }
  }

  /** refused handles a message the service answered with an error. */
  private refused(m: OutMessage, e: ViewerSessionError): void {
    if (e.reason === "NOT_JOINED") {
      // The watch that attached us ended (a replica went away): the
      // message waits for the next attach, with its number.
      this.joined = false;
      this.attachSeen = false;
      m.sentOn = 0;
      this.redial(REDIAL_STREAM_ERROR);
      return;
    }
    this.outbox.settle(m);
    if (e.reason === "SESSION_CLOSED") {
      return; // the terminal event tells why
    }
    this.emit("warning", e);
  }

  /** redial abandons the current streams and calls; the loops dial again. */
  private redial(reason: string): void {
    if (this.ended) {
      return;
    }
    this.redials++;
    this.conn++;
    this.connAbort.abort();
    this.connAbort = new AbortController();
    this.emit("redial", { reason });
    this.wakeWatch?.();
    this.wakeSender?.();
  }

  /** streamBroke notes a broken stream: with ICE trouble close by, the network changed. */
  private streamBroke(): void {
    this.lastStreamError = this.now();
    this.maybeNetworkChange("the control stream broke");
  }

  private maybeNetworkChange(what: string): void {
    if (this.networkHinted) {
      return;
    }
    const now = this.now();
    if (now - this.lastStreamError < networkHintWindowMs && now - this.lastIceTrouble < networkHintWindowMs) {
      this.networkHinted = true;
      this.networkChanged(`network changed: ${what} and ICE is ${this.pc?.iceConnectionState ?? "down"}`);
    }
  }

  private sleep(ms: number, setWake: (wake: () => void) => void): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      setWake(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  // ---- events ----

  /** onEvent takes one event from the watch; it reports whether it was new. */
  private onEvent(e: SessionEvent): boolean {
    this.outbox.ack(Number(e.ackedAppSequence));
    if (!this.timeline.record(e)) {
      return false;
    }
    const entry = timelineEntry(e);
    this.emit("timeline", entry);
    if (entry.state !== this.lastState) {
      const previous = this.lastState;
      this.lastState = entry.state;
      this.emit("state", { state: entry.state, previous });
    }
    if (!this.joined) {
      this.detectJoin(e);
    }
    this.run(() => this.act(e, entry));
    return true;
  }

  /**
   * detectJoin: the app is attached once its watch's APP_ATTACHED arrived
   * and the session left PENDING (the service refuses a Signal before
   * that with NOT_JOINED). Then the first offer is made.
   */
  private detectJoin(e: SessionEvent): void {
    if (e.type === EventType.APP_ATTACHED && e.sequence > this.watchAfter) {
      this.attachSeen = true;
    }
    if (!this.attachSeen || e.state === SessionState.PENDING || e.type === EventType.CLOSED || e.type === EventType.FAILED) {
      return;
    }
    this.joined = true;
    this.wakeSender?.();
    if (!this.pc) {
      this.run(() => this.newPeer());
    }
  }

  private async act(e: SessionEvent, entry: TimelineEntry): Promise<void> {
    switch (e.type) {
      case EventType.ANSWER:
        if (e.detail.case === "answer") await this.onAnswer(e.detail.value.sdp);
        break;
      case EventType.REMOTE_CANDIDATE:
        if (e.detail.case === "candidate") await this.onRemoteCandidate(e.detail.value);
        break;
      case EventType.RENEGOTIATE:
        if (e.detail.case === "renegotiate") await this.onRenegotiate(e.detail.value);
        break;
      case EventType.ICE_SERVERS_REFRESHED:
        if (e.detail.case === "iceServers" && e.detail.value.iceServers.length > 0) {
          this.ice = e.detail.value.iceServers.map(iceServerFromProto);
        }
        break;
      case EventType.MEDIA_STALLED:
        this.startOutage(entry.message);
        break;
      case EventType.RECOVERY_STARTED:
        this.recoveryStep = entry.step;
        break;
      case EventType.RECOVERED:
        this.networkHinted = false;
        this.recoveryStep = entry.step;
        break;
      case EventType.FAILED: {
        const reason = e.failure ? FailureReason[e.failure.reason] : "INTERNAL";
        this.fail(new ViewerSessionError(reason ?? "INTERNAL", e.failure?.message || e.message));
        break;
      }
      case EventType.CLOSED:
        this.finish();
        this.emit("closed", { reason: CloseReason[e.closeReason] ?? "UNSPECIFIED" });
        this.settle?.resolve();
        break;
    }
  }

  /** run queues f behind the event and peer-connection work before it. */
  private run(f: () => Promise<void> | void): void {
    this.serial = this.serial.then(f).catch((err: unknown) => {
      if (!this.ended) {
        this.emit("warning", toError(err));
      }
    });
  }

  // ---- the peer connection ----

  private async newPeer(): Promise<void> {
    if (this.ended) {
      return;
    }
    this.closePeer();
    const config: RTCConfiguration = { ...this.opts.rtcConfiguration, iceServers: this.ice };
    const pc = this.opts.createPeerConnection ? this.opts.createPeerConnection(config) : new RTCPeerConnection(config);
    this.pc = pc;
    this.pcId++;
    this.media = { ...noMedia, peerConnectionId: this.pcId };
    this.reported = "";
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.onicecandidate = (ev) => {
      if (pc !== this.pc || !ev.candidate || !ev.candidate.candidate) {
        return; // another peer connection's, or the end of gathering
      }
      const c = ev.candidate;
      const message: AppMessage = {
        case: "candidate",
        value: {
          candidate: c.candidate,
          sdpMid: c.sdpMid ?? "",
          sdpMlineIndex: c.sdpMLineIndex ?? undefined,
          usernameFragment: c.usernameFragment ?? "",
        },
      };
      if (this.offeredGen !== this.gen) {
        this.earlyCandidates.push({ gen: this.gen, message });
        return;
      }
      this.outbox.push(message, this.gen);
      this.wakeSender?.();
    };
    pc.oniceconnectionstatechange = () => this.onPeerState(pc);
    pc.onconnectionstatechange = () => this.onPeerState(pc);
    pc.ontrack = (ev) => {
      const video = this.opts.video;
      if (pc !== this.pc || !video) {
        return;
      }
      video.srcObject = ev.streams[0] ?? new MediaStream([ev.track]);
      video.play().catch(() => {}); // autoplay policy: the page decides (muted plays)
    };
    await this.offer(false);
  }

  private closePeer(): void {
    const old = this.pc;
    if (!old) {
      return;
    }
    this.pc = undefined;
    old.onicecandidate = old.oniceconnectionstatechange = old.onconnectionstatechange = old.ontrack = null;
    old.close();
  }

  /** offer makes an offer (an ICE restart when restart) and queues it; candidates of older offers still queued are dropped. */
  private async offer(restart: boolean): Promise<void> {
    const pc = this.pc;
    if (!pc) {
      return;
    }
    const gen = ++this.gen;
    this.outbox.dropQueued((m) => m.message.case === "candidate" && m.gen < gen);
    this.earlyCandidates = [];
    const offer = await pc.createOffer(restart ? { iceRestart: true } : undefined);
    await pc.setLocalDescription(offer);
    this.awaitingAnswer = true;
    this.heldCandidates = [];
    this.outbox.push({ case: "offer", value: { sdp: offer.sdp ?? "" } });
    this.offeredGen = gen;
    for (const c of this.earlyCandidates) {
      if (c.gen === gen) this.outbox.push(c.message, gen);
    }
    this.earlyCandidates = [];
    this.wakeSender?.();
  }

  private async onAnswer(sdp: string): Promise<void> {
    const pc = this.pc;
    if (!pc || !this.awaitingAnswer) {
      return; // an answer without an outstanding offer (a replay)
    }
    this.awaitingAnswer = false;
    await pc.setRemoteDescription({ type: "answer", sdp });
    const held = this.heldCandidates;
    this.heldCandidates = [];
    for (const c of held) {
      await this.addRemote(pc, c);
    }
  }

  private async onRemoteCandidate(p: IceCandidate): Promise<void> {
    if (!p.candidate) {
      return; // end of candidates
    }
    const c: RTCIceCandidateInit = {
      candidate: p.candidate,
      sdpMid: p.sdpMid || null,
      sdpMLineIndex: p.sdpMlineIndex ?? null,
      usernameFragment: p.usernameFragment || null,
    };
    if (!this.pc || this.awaitingAnswer) {
      this.heldCandidates.push(c);
      return;
    }
    await this.addRemote(this.pc, c);
  }

  private async addRemote(pc: RTCPeerConnection, c: RTCIceCandidateInit): Promise<void> {
    try {
      await pc.addIceCandidate(c);
    } catch {
      // A candidate of an older description: harmless.
    }
  }

  private async onRenegotiate(rn: Renegotiate): Promise<void> {
    if (rn.iceServers.length > 0) {
      this.ice = rn.iceServers.map(iceServerFromProto);
    }
    if (rn.action === Renegotiate_Action.ICE_RESTART && this.pc) {
      try {
        this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers: this.ice });
      } catch {
        // Some browsers refuse a change of certain fields; the restart goes on.
      }
      try {
        await this.offer(true);
        return;
      } catch {
        // Fall through: a new peer connection instead.
      }
    }
    await this.newPeer();
  }

  private onPeerState(pc: RTCPeerConnection): void {
    if (pc !== this.pc) {
      return;
    }
    const ice = pc.iceConnectionState;
    const peer = pc.connectionState;
    const key = `${ice}/${peer}`;
    if (key === this.reported) {
      return;
    }
    this.reported = key;
    this.outbox.push({ case: "stateReport", value: { iceState: iceStateToProto(ice), peerState: peerStateToProto(peer) } });
    this.wakeSender?.();
    if (ice === "disconnected" || ice === "failed") {
      this.lastIceTrouble = this.now();
      this.maybeNetworkChange("ICE lost its path");
    } else if (ice === "connected" || ice === "completed") {
      this.lastIceTrouble = -Infinity;
    }
  }

  // ---- media ----

  private scheduleMedia(ms: number): void {
    if (this.ended) {
      return;
    }
    this.mediaTimer = setTimeout(() => void this.onMediaTick(), ms);
  }

  private lastReportAt = -Infinity;

  private async onMediaTick(): Promise<void> {
    const pc = this.pc;
    const now = this.now();
    if (pc) {
      try {
        const report = await pc.getStats();
        if (pc === this.pc) {
          this.media = readMedia(report.values() as Iterable<never>, this.pcId, now, this.media);
        }
      } catch {
        // A closed peer connection: its counters are final.
      }
    }
    this.checkProgress(now);
    if (this.behindSince !== -Infinity && now - this.behindSince > this.opts.ackTimeoutMs) {
      this.behindSince = -Infinity;
      this.redial(REDIAL_WATCH_BEHIND);
    }
    if (now - this.lastReportAt >= this.opts.mediaIntervalMs - firstFramePollMs / 2) {
      this.lastReportAt = now;
      if (this.pc) {
        this.emit("media", this.media);
      }
      if (this.joined) {
        const m = this.pc ? this.media : noMedia;
        this.outbox.push({
          case: "mediaReport",
          value: {
            peerConnectionId: this.pc ? this.pcId : 0,
            packetsReceived: BigInt(m.packetsReceived),
            bytesReceived: BigInt(m.bytesReceived),
            framesDecoded: BigInt(m.framesDecoded),
          },
        });
        this.wakeSender?.();
      }
    }
    this.scheduleMedia(this.firstFrame ? mediaPollMs : firstFramePollMs);
  }

  /**
   * checkProgress follows the decoded frames: the first frame, a stall
   * (no new frame for stallMs after video played: an outage), and video
   * back after one (recovered, with the black video the user saw).
   */
  private checkProgress(now: number): void {
    const frames = this.media.framesDecoded;
    const progressed = frames > 0 && (this.media.peerConnectionId !== this.lastFramesPc || frames > this.lastFrames);
    this.lastFramesPc = this.media.peerConnectionId;
    this.lastFrames = frames;
    if (progressed) {
      if (!this.firstFrame) {
        this.firstFrame = true;
        this.emit("firstframe", { sincePageLoadMs: now, sinceStartMs: now - this.startedAt });
      } else if (this.inOutage) {
        this.inOutage = false;
        this.emit("recovered", { outageMs: Math.round(now - this.lastProgressAt), step: this.recoveryStep });
      }
      this.lastProgressAt = now;
      this.recoveryStep = "";
      return;
    }
    if (this.firstFrame && now - this.lastProgressAt > this.opts.stallMs) {
      this.startOutage("the video stopped");
    }
  }
  private lastFramesPc = 0;

  private startOutage(cause: string): void {
    if (!this.inOutage && this.firstFrame) {
      this.inOutage = true;
      this.emit("outage", { cause });
    }
  }

  // ---- the end ----

  private fail(e: ViewerSessionError): void {
    if (this.ended) {
      return;
    }
    this.finish();
    this.emit("error", e);
    this.settle?.reject(e);
  }

  /** finish stops every loop, timer and listener and closes the peer connection. */
  private finish(): void {
    if (this.ended) {
      return;
    }
    this.ended = true;
    clearTimeout(this.mediaTimer);
    this.connAbort.abort();
    this.wakeSender?.();
    this.wakeWatch?.();
    for (const c of this.cleanups) c();
    this.cleanups = [];
    this.closePeer();
    this.outbox.clear();
  }

  private emit<K extends keyof ViewerSessionEvents>(type: K, ev: ViewerSessionEvents[K]): void {
    for (const l of this.listeners.get(type) ?? []) {
      try {
        (l as Listener<K>)(ev);
      } catch (err) {
        setTimeout(() => {
          throw err; // the page's bug: report it without breaking the session
        });
      }
    }
  }
}

/** newTransport builds the connect-web transport of a protocol. */
export function newTransport(endpoint: string, protocol: Protocol, keepalive: boolean): Transport {
  const base = endpoint.replace(/\/+$/, "") || "/";
  const fetchImpl: typeof fetch | undefined = keepalive
    ? (input, init) => globalThis.fetch(input, { ...init, keepalive: true })
    : undefined;
  switch (protocol) {
    case "grpc-web":
      return createGrpcWebTransport({ baseUrl: base, ...(fetchImpl ? { fetch: fetchImpl } : {}) });
    case "connect":
    case "connect-json":
      return createConnectTransport({ baseUrl: base, useBinaryFormat: protocol === "connect", ...(fetchImpl ? { fetch: fetchImpl } : {}) });
  }
  throw new ViewerSessionError("INVALID_ARGUMENT", `unknown protocol ${JSON.stringify(protocol)}`);
}

/** timelineEntry makes the page's view of an event. */
export function timelineEntry(e: SessionEvent): TimelineEntry {
  let step = "";
  let outageMs = 0;
  if (e.detail.case === "recovery") {
    step = RecoveryStep[e.detail.value.step] ?? "";
    const o = e.detail.value.outage;
    if (o) {
      outageMs = Number(o.seconds) * 1000 + Math.round(o.nanos / 1e6);
    }
  }
  return {
    sequence: Number(e.sequence),
    time: e.time ? new Date(Number(e.time.seconds) * 1000 + Math.floor(e.time.nanos / 1e6)) : new Date(0),
    type: EventType[e.type] ?? String(e.type),
    state: SessionState[e.state] ?? String(e.state),
    attempt: e.attempt,
    clientId: e.clientId,
    message: e.message,
    reason: e.failure && e.failure.reason !== FailureReason.UNSPECIFIED ? (FailureReason[e.failure.reason] ?? "") : "",
    closeReason: e.closeReason !== CloseReason.UNSPECIFIED ? (CloseReason[e.closeReason] ?? "") : "",
    step,
    outageMs,
    raw: e,
  };
}

function iceServerInit(s: IceServerInit): RTCIceServer {
  return { urls: s.urls, ...(s.username ? { username: s.username } : {}), ...(s.credential ? { credential: s.credential } : {}) };
}

function iceServerFromProto(s: IceServer): RTCIceServer {
  return iceServerInit({ urls: [...s.urls], username: s.username, credential: s.credential });
}

function iceStateToProto(s: RTCIceConnectionState): IceConnectionState {
  switch (s) {
    case "new":
      return IceConnectionState.NEW;
    case "checking":
      return IceConnectionState.CHECKING;
    case "connected":
      return IceConnectionState.CONNECTED;
    case "completed":
      return IceConnectionState.COMPLETED;
    case "disconnected":
      return IceConnectionState.DISCONNECTED;
    case "failed":
      return IceConnectionState.FAILED;
    case "closed":
      return IceConnectionState.CLOSED;
  }
  return IceConnectionState.UNSPECIFIED;
}

function peerStateToProto(s: RTCPeerConnectionState): PeerConnectionState {
  switch (s) {
    case "new":
      return PeerConnectionState.NEW;
    case "connecting":
      return PeerConnectionState.CONNECTING;
    case "connected":
      return PeerConnectionState.CONNECTED;
    case "disconnected":
      return PeerConnectionState.DISCONNECTED;
    case "failed":
      return PeerConnectionState.FAILED;
    case "closed":
      return PeerConnectionState.CLOSED;
  }
  return PeerConnectionState.UNSPECIFIED;
}

export type { AppMessage };
