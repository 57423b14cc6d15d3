// The app's messages to the service, numbered and kept until acknowledged.

import type { MessageInitShape } from "@bufbuild/protobuf";
import type { SignalRequestSchema } from "./gen/viewersession/v1/service_pb";

/** One app -> service message: the SignalRequest `message` oneof. */
export type AppMessage = NonNullable<MessageInitShape<typeof SignalRequestSchema>["message"]>;

/** The kinds of app message: "offer", "candidate", "stateReport", ... */
export type AppMessageKind = NonNullable<AppMessage["case"]>;

/** An outbox entry. */
export interface OutMessage {
  readonly message: AppMessage;
  /** Offer generation a candidate belongs to (0 for other kinds). */
  readonly gen: number;
  /** app_sequence; 0 until a sender takes the message. */
  seq: number;
  /** The connection generation it was last sent on (0: never sent). */
  sentOn: number;
  /** When it was last sent (ms, the outbox's clock). */
  sentAt: number;
}

/**
 * Outbox numbers the app's messages 1, 2, 3 ... for the whole session and
 * holds each until the service acknowledges it, so that a message sent on
 * a connection that then died is sent again, with the same number, on the
 * next one (the service applies each number once).
 *
 * A message is numbered when a sender first takes it: one dropped before
 * that (a candidate of a replaced offer, a media report superseded by a
 * newer one) leaves no hole. Senders take, in order, every unacknowledged
 * message not yet sent on their connection, then the queued ones.
 */
export class Outbox {
  private queued: OutMessage[] = [];
  private unacked: OutMessage[] = [];
  private lastSeq = 0;
  private ackedSeq = 0;

  /** The last number given. */
  get last(): number {
    return this.lastSeq;
  }

  /** The highest number the service acknowledged. */
  get acked(): number {
    return this.ackedSeq;
  }

  /** Messages not acknowledged yet, sent or not. */
  get pending(): number {
    return this.queued.length + this.unacked.length;
  }

  /**
   * push queues a message. A media report replaces one still queued: only
   * the newest progress matters.
   */
  push(message: AppMessage, gen = 0): void {
    if (message.case === "mediaReport") {
      this.queued = this.queued.filter((m) => m.message.case !== "mediaReport");
    }
    this.queued.push({ message, gen, seq: 0, sentOn: 0, sentAt: 0 });
  }

  /**
   * next returns the next message to send on the connection whose
   * generation is conn: the oldest unacknowledged one not yet sent on it,
   * else the next queued one, numbered now. It records the send.
   */
  next(conn: number, now: number): OutMessage | undefined {
    for (const m of this.unacked) {
      if (m.sentOn !== conn) {
        m.sentOn = conn;
        m.sentAt = now;
        return m;
      }
    }
    const m = this.queued.shift();
    if (m === undefined) {
      return undefined;
    }
    m.seq = ++this.lastSeq;
    m.sentOn = conn;
    m.sentAt = now;
    this.unacked.push(m);
    return m;
  }

  /** ack records that the service handled every message up to seq. */
  ack(seq: number): void {
    if (seq <= this.ackedSeq) {
      return;
    }
    this.ackedSeq = Math.min(seq, this.lastSeq);
    this.unacked = this.unacked.filter((m) => m.seq > this.ackedSeq);
  }

  /**
   * settle drops m, which the service answered on its own call (taken or
   * refused): either way it was handled and is not sent again.
   */
  settle(m: OutMessage): void {
    this.unacked = this.unacked.filter((u) => u !== m);
  }

  /** dropQueued drops the queued (not yet numbered) messages drop selects. */
  dropQueued(drop: (m: OutMessage) => boolean): void {
    this.queued = this.queued.filter((m) => !drop(m));
  }

  /** has reports whether a message of this kind is queued or unacknowledged. */
  has(kind: AppMessageKind): boolean {
    return this.queued.some((m) => m.message.case === kind) || this.unacked.some((m) => m.message.case === kind);
  }

  /**
   * oldestSent returns when the oldest unacknowledged message sent on conn
   * was sent, or undefined: the ack timeout runs from it.
   */
  oldestSent(conn: number): number | undefined {
    return this.unacked.find((m) => m.sentOn === conn)?.sentAt;
  }

  /** take numbers a message sent outside the queue (a leave on pagehide). */
  take(message: AppMessage): OutMessage {
    return { message, gen: 0, seq: ++this.lastSeq, sentOn: 0, sentAt: 0 };
  }

  /** clear forgets everything (the session ended). */
  clear(): void {
    this.queued = [];
    this.unacked = [];
  }
}
