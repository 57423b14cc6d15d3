import { test } from "node:test";
import assert from "node:assert/strict";
import { Outbox } from "../src/outbox";
import { Timeline } from "../src/timeline";

const report = (n: number) => ({ case: "mediaReport" as const, value: { peerConnectionId: 1, packetsReceived: BigInt(n) } });
const cand = (c: string) => ({ case: "candidate" as const, value: { candidate: c, sdpMid: "0" } });

test("outbox numbers messages in order, once, across connections", () => {
  const o = new Outbox();
  o.push({ case: "offer", value: { sdp: "o1" } });
  o.push(cand("c1"));
  o.push(cand("c2"));
  const a = o.next(1, 0)!;
  const b = o.next(1, 0)!;
  assert.deepEqual([a.seq, b.seq], [1, 2]);
  // The connection dies before any ack: the next one resends 1 and 2 with
  // the same numbers, then numbers 3.
  const resent = [o.next(2, 10)!, o.next(2, 10)!, o.next(2, 10)!];
  assert.deepEqual(resent.map((m) => m.seq), [1, 2, 3]);
  assert.equal(resent[0], a);
  assert.equal(o.next(2, 10), undefined);
  o.ack(2);
  assert.equal(o.acked, 2);
  assert.equal(o.pending, 1);
  // An ack below the highest is ignored; one above the last given is capped.
  o.ack(1);
  o.ack(99);
  assert.equal(o.acked, 3);
  assert.equal(o.pending, 0);
});

test("a queued media report is replaced by a newer one; a numbered one is not", () => {
  const o = new Outbox();
  o.push(report(1));
  o.push(report(2));
  const m = o.next(1, 0)!;
  assert.equal(m.message.case === "mediaReport" && m.message.value.packetsReceived, 2n);
  assert.equal(m.seq, 1);
  o.push(report(3));
  assert.equal(o.pending, 2, "the sent report stays until acknowledged");
});

test("candidates of a replaced offer are dropped before they are numbered: no holes", () => {
  const o = new Outbox();
  o.push({ case: "offer", value: { sdp: "o1" } }, 0);
  o.push(cand("old"), 1);
  o.dropQueued((m) => m.message.case === "candidate" && m.gen < 2);
  o.push({ case: "offer", value: { sdp: "o2" } }, 0);
  o.push(cand("new"), 2);
  const seqs: number[] = [];
  const kinds: string[] = [];
  for (let m = o.next(1, 0); m; m = o.next(1, 0)) {
    seqs.push(m.seq);
    kinds.push(m.message.case === "candidate" ? m.message.value.candidate! : m.message.case!);
  }
  assert.deepEqual(seqs, [1, 2, 3]);
  assert.deepEqual(kinds, ["offer", "offer", "new"]);
});

test("settle drops a message its own call answered; oldestSent times the ack timeout", () => {
  const o = new Outbox();
  o.push(cand("a"));
  o.push(cand("b"));
  const a = o.next(1, 100)!;
  o.next(1, 200);
  assert.equal(o.oldestSent(1), 100);
  o.settle(a);
  assert.equal(o.oldestSent(1), 200);
  assert.equal(o.oldestSent(2), undefined);
  assert.equal(o.take({ case: "leave", value: {} }).seq, 3, "a leave outside the queue takes the next number");
});

test("timeline drops duplicates and counts gaps", () => {
  const t = new Timeline();
  assert.equal(t.record({ sequence: 1n }), true);
  assert.equal(t.record({ sequence: 2n }), true);
  assert.equal(t.record({ sequence: 2n }), false);
  assert.equal(t.record({ sequence: 1n }), false);
  assert.equal(t.record({ sequence: 5n }), true);
  assert.deepEqual([t.last, t.gaps, t.duplicates], [5n, 1, 2]);
});
