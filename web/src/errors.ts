// Errors of the ViewerSession, typed by the service's google.rpc.ErrorInfo
// reason (domain viewersession.acme.dev), so that a page can switch on a
// stable string instead of parsing messages.

import { Code, ConnectError } from "@connectrpc/connect";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

/** The ErrorInfo domain of every error the service raises. */
export const DOMAIN = "viewersession.acme.dev";

/**
 * Reasons the library itself gives errors that did not come from the
 * service with an ErrorInfo:
 * - NETWORK: the service could not be reached for longer than the library
 *   keeps trying (the stream kept failing).
 * - PROTOCOL: the service answered something the library cannot use.
 * - STOPPED: the page called leave() or stop() while the call was pending.
 */
export const LIBRARY_REASONS = ["NETWORK", "PROTOCOL", "STOPPED"] as const;

/**
 * ViewerSessionError is every error the library reports: a failed session
 * (reason = the session's FailureReason name, e.g. ANSWER_TIMEOUT), a call
 * the service refused (reason = its ErrorInfo reason, e.g.
 * SESSION_NOT_FOUND, UNAUTHENTICATED, CHANNEL_FULL), or one of
 * LIBRARY_REASONS.
 */
export class ViewerSessionError extends Error {
  /** Stable reason, e.g. "ANSWER_TIMEOUT". */
  readonly reason: string;
  /** The RPC status code name ("deadline_exceeded"), "" when none. */
  readonly code: string;
  /** Whether trying again later may succeed (the service said so, or the network failed). */
  readonly retryable: boolean;

  constructor(reason: string, message: string, code = "", retryable = false, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "ViewerSessionError";
    this.reason = reason;
    this.code = code;
    this.retryable = retryable;
  }
}

/** The google.rpc.ErrorInfo fields the library reads. */
export interface ErrorInfo {
  reason: string;
  domain: string;
  metadata: Record<string, string>;
}

const errorInfoType = "google.rpc.ErrorInfo";

/**
 * errorInfo returns the google.rpc.ErrorInfo of a ConnectError that came
 * from the wire, or undefined. (ErrorInfo is decoded by hand: three
 * fields, reason = 1, domain = 2, metadata = 3, so that the library does
 * not carry the googleapis definitions.)
 */
export function errorInfo(err: ConnectError): ErrorInfo | undefined {
  for (const d of err.details) {
    if (!("type" in d) || d.type !== errorInfoType || !(d.value instanceof Uint8Array)) {
      continue;
    }
    try {
      return decodeErrorInfo(d.value);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

export function decodeErrorInfo(bytes: Uint8Array): ErrorInfo {
  const info: ErrorInfo = { reason: "", domain: "", metadata: {} };
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [field, wt] = r.tag();
    if (field === 1 && wt === WireType.LengthDelimited) {
      info.reason = r.string();
    } else if (field === 2 && wt === WireType.LengthDelimited) {
      info.domain = r.string();
    } else if (field === 3 && wt === WireType.LengthDelimited) {
      const entry = new BinaryReader(r.bytes());
      let key = "";
      let value = "";
      while (entry.pos < entry.len) {
        const [f, w] = entry.tag();
        if (f === 1 && w === WireType.LengthDelimited) key = entry.string();
        else if (f === 2 && w === WireType.LengthDelimited) value = entry.string();
        else entry.skip(w);
      }
      info.metadata[key] = value;
    } else {
      r.skip(wt);
    }
  }
  return info;
}

/** codeName is the lower snake case name of a Connect code ("not_found"). */
export function codeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase());
}

/**
 * transient reports whether a failed call is worth repeating on a fresh
 * stream: the network or the server's transport failed (no answer from the
 * service itself), or the service said it is unavailable or going away.
 * A refusal with an ErrorInfo (NOT_FOUND, PERMISSION_DENIED, ...) is not.
 */
export function transient(err: unknown): boolean {
  const ce = ConnectError.from(err);
  const info = errorInfo(ce);
  switch (ce.code) {
    case Code.Unavailable:
    case Code.Aborted:
    case Code.Canceled:
      return true;
    case Code.DeadlineExceeded:
    case Code.Unknown:
    case Code.Internal:
      // With an ErrorInfo it is the service's answer; without one, the
      // transport's (a fetch that failed, a timeout of ours, a proxy).
      return info === undefined || info.reason === "";
  }
  return false;
}

/** toError turns whatever a call threw into a ViewerSessionError. */
export function toError(err: unknown): ViewerSessionError {
  if (err instanceof ViewerSessionError) {
    return err;
  }
  const ce = ConnectError.from(err);
  const info = errorInfo(ce);
  const reason = info?.reason || (ce.isWireError ? "UNKNOWN" : "NETWORK");
  return new ViewerSessionError(reason, ce.rawMessage, codeName(ce.code), transient(ce), err);
}
