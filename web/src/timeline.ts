// The session's timeline as the app sees it: contiguous, without duplicates.

/** The part of a SessionEvent the timeline needs. */
export interface Sequenced {
  sequence: bigint;
}

/**
 * Timeline keeps the last sequence seen across resumes: an event at or
 * below it is a duplicate (a replay overlapping what arrived), one that
 * skips sequences is kept and counted as a gap (the service promises none).
 */
export class Timeline {
  private lastSeq = 0n;
  private gapCount = 0;
  private dupCount = 0;

  /** The newest sequence seen: resume after it. */
  get last(): bigint {
    return this.lastSeq;
  }

  get gaps(): number {
    return this.gapCount;
  }

  get duplicates(): number {
    return this.dupCount;
  }

  /** record reports whether e is new (and takes it), or a duplicate. */
  record(e: Sequenced): boolean {
    if (e.sequence <= this.lastSeq) {
      this.dupCount++;
      return false;
    }
    if (e.sequence !== this.lastSeq + 1n) {
      this.gapCount++;
    }
    this.lastSeq = e.sequence;
    return true;
  }
}
