// The browser tests' viewer page: a ViewerSession on a <video>, everything
// it emits reported to the test (window.report, set by the driver).
//
// Query: endpoint, protocol (connect | connect-json | grpc-web), and either
// session + token (+ ice, JSON) or mint=1 (the page asks /dev/session on
// the endpoint, as the demo does).
import { createClient } from "@connectrpc/connect";
import { ViewerSession, ViewerSessionService, newTransport, timelineEntry, type IceServerInit, type TimelineEntry } from "../../src/index";

declare global {
  interface Window {
    report?: (page: string, data: unknown) => void;
    pageId?: string;
    session?: ViewerSession;
  }
}

const q = new URLSearchParams(location.search);
const send = (data: Record<string, unknown>) => window.report?.(window.pageId ?? "", { t: performance.now(), ...data });
const video = document.getElementById("video") as HTMLVideoElement;

const entry = (e: TimelineEntry) => ({ kind: "timeline", sequence: e.sequence, type: e.type, state: e.state, attempt: e.attempt, clientId: e.clientId, message: e.message, reason: e.reason, closeReason: e.closeReason, step: e.step, outageMs: e.outageMs });

/** watchOnly reports a session's timeline as a backend would watch it (no join). */
async function watchOnly(endpoint: string, session: string, token: string) {
  const client = createClient(ViewerSessionService, newTransport(endpoint, "connect", false));
  for await (const res of client.watchSession({ name: session }, { headers: { Authorization: `Bearer ${token}` } })) {
    if (res.event) send(entry(timelineEntry(res.event)));
  }
  send({ kind: "watch-ended" });
}

async function main() {
  const endpoint = q.get("endpoint") ?? location.origin;
  if (q.get("idle")) {
    return; // a page for evaluations only
  }
  if (q.get("watchonly")) {
    return watchOnly(endpoint, q.get("session") ?? "", q.get("token") ?? "");
  }
  let session = q.get("session") ?? "";
  let token = q.get("token") ?? "";
  let iceServers: IceServerInit[] = JSON.parse(q.get("ice") ?? "[]");
  if (q.get("mint")) {
    const res = await fetch(`${endpoint}/dev/session`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ channel: q.get("channel") ?? "demo-camera", viewer_id: q.get("viewer") ?? "browser-test" }),
    });
    const body = await res.json();
    ({ name: session, token } = body);
    iceServers = body.ice_servers ?? [];
  }
  const s = new ViewerSession({
    endpoint,
    session,
    token,
    video,
    iceServers,
    protocol: (q.get("protocol") ?? "connect") as "connect",
    rtcConfiguration: q.get("relay") ? { iceTransportPolicy: "relay" } : undefined,
  });
  window.session = s;
  s.on("state", (e) => send({ kind: "state", ...e }));
  s.on("timeline", (e) => send(entry(e)));
  s.on("media", (m) => send({ kind: "media", ...m }));
  s.on("firstframe", (e) => send({ kind: "firstframe", ...e }));
  s.on("outage", (e) => send({ kind: "outage", ...e }));
  s.on("recovered", (e) => send({ kind: "recovered", ...e }));
  s.on("network", (e) => send({ kind: "network", ...e }));
  s.on("redial", (e) => send({ kind: "redial", ...e }));
  s.on("warning", (e) => send({ kind: "warning", reason: e.reason, message: e.message }));
  s.on("error", (e) => send({ kind: "error", reason: e.reason, code: e.code, message: e.message }));
  s.on("closed", (e) => send({ kind: "closed", ...e }));
  send({ kind: "started", session });
  await s.start().catch(() => {});
}

main().catch((e) => send({ kind: "error", reason: "PAGE", message: String(e) }));
