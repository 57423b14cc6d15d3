// The demo viewer page of `server -dev`: pick a channel, watch it, see the
// session's live timeline and the media as the browser receives it.
//
// Sessions come from the -dev web port's POST /dev/session (minted with the
// dev API key; a production backend calls CreateSession with its own key and
// hands the page the session's name and token). Query: channel, protocol,
// autostart=0 to wait for a click, endpoint to use another web port than
// the page's own origin.
import { ViewerSession, type MediaStats, type TimelineEntry } from "../../src/index";

declare global {
  interface Window {
    report?: (page: string, data: unknown) => void;
    pageId?: string;
  }
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const video = $<HTMLVideoElement>("video");
const overlay = $("overlay");
const overlayText = $("overlay-text");
const statePill = $("state");
const live = $("live");
const events = $<HTMLOListElement>("events");
const channelInput = $<HTMLInputElement>("channel");
const protocolSelect = $<HTMLSelectElement>("protocol");
const watchButton = $<HTMLButtonElement>("watch");
const leaveButton = $<HTMLButtonElement>("leave");
const chart = $<HTMLCanvasElement>("chart");

const q = new URLSearchParams(location.search);
const endpoint = (q.get("endpoint") ?? location.origin).replace(/\/+$/, "");
const report = (data: Record<string, unknown>) => window.report?.(window.pageId ?? "", { t: performance.now(), ...data });

let session: ViewerSession | undefined;
let samples: Array<{ fps: number; kbps: number }> = [];

const stateClass: Record<string, string> = {
  CONNECTED: "ok",
  PENDING: "idle",
  SIGNALING: "warn",
  AWAITING_OFFER: "warn",
  AWAITING_ANSWER: "warn",
  CONNECTING: "warn",
  RETRYING: "warn",
  RECOVERING: "warn",
  FAILED: "bad",
  CLOSED: "idle",
};

const eventClass = (e: TimelineEntry): string => {
  if (e.reason || e.type === "FAILED" || e.type === "MEDIA_STALLED") return "bad";
  if (["RECOVERED", "MEDIA_FLOWING", "ANSWER"].includes(e.type) || (e.type === "STATE_CHANGED" && e.state === "CONNECTED")) return "ok";
  if (["RECOVERY_STARTED", "RETRY_SCHEDULED", "NETWORK_CHANGED", "GOING_AWAY", "RENEGOTIATE"].includes(e.type)) return "warn";
  if (["REMOTE_CANDIDATE", "CONNECTION_STATE", "ICE_SERVERS_REFRESHED"].includes(e.type)) return "quiet";
  return "info";
};

function setState(state: string): void {
  statePill.textContent = state.replaceAll("_", " ");
  statePill.className = `pill ${stateClass[state] ?? "idle"}`;
}

function showOverlay(text: string, error = false): void {
  overlayText.textContent = text;
  overlay.className = `overlay${error ? " error" : ""}`;
}

function addEvent(e: TimelineEntry): void {
  const li = document.createElement("li");
  li.className = eventClass(e);
  const time = document.createElement("time");
  time.textContent = e.time.toLocaleTimeString([], { hour12: false }) + "." + String(e.time.getMilliseconds()).padStart(3, "0").slice(0, 1);
  const type = document.createElement("span");
  type.className = "type";
  type.textContent = e.type.replaceAll("_", " ") + (e.attempt > 1 ? ` · attempt ${e.attempt}` : "");
  const msg = document.createElement("span");
  msg.className = "msg";
  msg.textContent = e.message + (e.outageMs ? ` (outage ${(e.outageMs / 1000).toFixed(2)} s)` : "");
  li.append(time, type, msg);
  const atBottom = events.scrollTop + events.clientHeight >= events.scrollHeight - 24;
  events.append(li);
  if (atBottom) events.scrollTop = events.scrollHeight;
}

function fmt(n: number, unit: string, digits = 0): string {
  return `${n.toFixed(digits)} ${unit}`;
}

function showStats(m: MediaStats): void {
  $("s-fps").textContent = fmt(m.framesPerSecond, "fps", 1);
  $("s-bitrate").textContent = m.bitrate >= 1e6 ? fmt(m.bitrate / 1e6, "Mbit/s", 2) : fmt(m.bitrate / 1e3, "kbit/s");
  $("s-res").textContent = m.frameWidth ? `${m.frameWidth}×${m.frameHeight}` : "–";
  $("s-codec").textContent = m.codec.replace("video/", "") || "–";
  $("s-frames").textContent = m.framesDecoded.toLocaleString();
  $("s-path").textContent = m.localCandidateType ? `${m.localCandidateType} → ${m.remoteCandidateType}` : "–";
  $("s-rtt").textContent = m.roundTripTime ? fmt(m.roundTripTime * 1000, "ms", 1) : "–";
  samples.push({ fps: m.framesPerSecond, kbps: m.bitrate / 1000 });
  samples = samples.slice(-60);
  drawChart();
}

function drawChart(): void {
  const dpr = window.devicePixelRatio || 1;
  const w = chart.clientWidth;
  const h = 120;
  chart.width = w * dpr;
  chart.height = h * dpr;
  const g = chart.getContext("2d");
  if (!g) return;
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  g.strokeStyle = "#243152";
  g.lineWidth = 1;
  for (let i = 1; i < 4; i++) {
    g.beginPath();
    g.moveTo(0, (h * i) / 4);
    g.lineTo(w, (h * i) / 4);
    g.stroke();
  }
  const line = (values: number[], color: string) => {
    const top = Math.max(1, ...values) * 1.2;
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    values.forEach((v, i) => {
      const x = (w * (i + 60 - values.length)) / 59;
      const y = h - 4 - ((h - 8) * v) / top;
      if (i === 0) g.moveTo(x, y);
      else g.lineTo(x, y);
    });
    g.stroke();
  };
  line(samples.map((s) => s.kbps), "#4f8cff");
  line(samples.map((s) => s.fps), "#2fbf71");
}

async function watch(): Promise<void> {
  session?.stop();
  events.replaceChildren();
  samples = [];
  drawChart();
  video.srcObject = null;
  live.hidden = true;
  setState("PENDING");
  showOverlay("Creating a session…");
  watchButton.disabled = true;
  const channel = channelInput.value.trim() || "demo-camera";
  let minted: { name: string; token: string; ice_servers?: Array<{ urls: string[]; username?: string; credential?: string }> };
  try {
    const res = await fetch(`${endpoint}/dev/session`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ channel, viewer_id: "demo-page" }),
    });
    if (!res.ok) throw new Error((await res.text()).trim() || res.statusText);
    minted = await res.json();
  } catch (e) {
    showOverlay(`Could not create a session: ${(e as Error).message}`, true);
    setState("FAILED");
    watchButton.disabled = false;
    return;
  }
  $("session-name").textContent = minted.name;
  const s = new ViewerSession({
    endpoint,
    session: minted.name,
    token: minted.token,
    video,
    iceServers: minted.ice_servers,
    protocol: protocolSelect.value as "connect",
  });
  session = s;
  s.on("state", ({ state }) => {
    setState(state);
    report({ kind: "state", state });
    if (state === "SIGNALING" || state === "AWAITING_ANSWER") showOverlay("Calling the camera…");
    if (state === "CONNECTING") showOverlay("Connecting…");
    if (state === "RETRYING") showOverlay("The camera did not answer; trying again…");
  });
  s.on("timeline", addEvent);
  s.on("media", (m) => {
    showStats(m);
    report({ kind: "media", framesDecoded: m.framesDecoded, framesPerSecond: m.framesPerSecond });
  });
  s.on("firstframe", (f) => {
    overlay.className = "overlay hidden";
    live.hidden = false;
    $("s-first").textContent = fmt(f.sinceStartMs, "ms");
    report({ kind: "firstframe", ...f });
  });
  s.on("outage", () => {
    live.hidden = true;
    showOverlay("Reconnecting…");
  });
  s.on("recovered", ({ outageMs }) => {
    live.hidden = false;
    overlay.className = "overlay hidden";
    report({ kind: "recovered", outageMs });
  });
  s.on("error", (e) => {
    live.hidden = true;
    showOverlay(`${e.reason}: ${e.message}`, true);
  });
  s.on("closed", ({ reason }) => {
    live.hidden = true;
    showOverlay(`Session closed (${reason})`, true);
  });
  leaveButton.disabled = false;
  watchButton.disabled = false;
  await s.start().catch(() => {});
  leaveButton.disabled = true;
}

$("controls").addEventListener("submit", (ev) => {
  ev.preventDefault();
  void watch();
});
leaveButton.addEventListener("click", () => void session?.leave().catch(() => {}));
window.addEventListener("resize", drawChart);

channelInput.value = q.get("channel") ?? channelInput.value;
protocolSelect.value = q.get("protocol") ?? protocolSelect.value;
if (q.get("autostart") !== "0") {
  void watch();
} else {
  showOverlay("Pick a channel and press Watch");
}
