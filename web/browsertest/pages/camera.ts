// A browser camera on the official KVS WebRTC JS SDK (amazon-kinesis-video-
// streams-webrtc, loaded from its npm package's dist bundle as the global
// KVSWebRTC): SignalingClient as MASTER, doing what the SDK's master sample
// documents: a new peer connection for each viewer's offer (closing that
// viewer's previous one), the camera's tracks added, the answer sent, ICE
// candidates trickled both ways, signaling reopened when it closes.
//
// The control-plane calls the sample makes with the AWS SDK
// (DescribeSignalingChannel, GetSignalingChannelEndpoint as MASTER,
// GetIceServerConfig) are made here with fetch and a SigV4 signature of
// our own (WebCrypto), against the endpoint given in the query.
//
// Query: endpoint (the KVS control plane), region, channel, akid, secret.

declare const KVSWebRTC: {
  SignalingClient: new (config: {
    channelARN: string;
    channelEndpoint: string;
    role: string;
    region: string;
    credentials: { accessKeyId: string; secretAccessKey: string };
    systemClockOffset?: number;
  }) => SignalingClient;
  Role: { MASTER: string; VIEWER: string };
};

interface SignalingClient {
  on(event: "open" | "close", f: () => void): void;
  on(event: "error", f: (e: unknown) => void): void;
  on(event: "sdpOffer", f: (offer: RTCSessionDescriptionInit, remoteClientId: string) => void): void;
  on(event: "iceCandidate", f: (c: RTCIceCandidateInit, remoteClientId: string) => void): void;
  open(): void;
  close(): void;
  sendSdpAnswer(answer: RTCSessionDescription, remoteClientId: string): void;
  sendIceCandidate(c: RTCIceCandidate, remoteClientId: string): void;
}

declare global {
  interface Window {
    report?: (page: string, data: unknown) => void;
    pageId?: string;
  }
}

const q = new URLSearchParams(location.search);
const send = (data: Record<string, unknown>) => window.report?.(window.pageId ?? "", { t: performance.now(), ...data });
const enc = new TextEncoder();

const hex = (b: ArrayBuffer) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");
const sha256 = async (s: string) => hex(await crypto.subtle.digest("SHA-256", enc.encode(s)));
async function hmac(key: BufferSource, data: string): Promise<ArrayBuffer> {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return crypto.subtle.sign("HMAC", k, enc.encode(data));
}

/** signedPost makes a SigV4-signed (service kinesisvideo) JSON POST. */
async function signedPost(base: string, path: string, body: unknown): Promise<any> {
  const url = new URL(path, base);
  const payload = JSON.stringify(body);
  const region = q.get("region") ?? "us-west-2";
  const akid = q.get("akid") ?? "";
  const secret = q.get("secret") ?? "";
  const amzDate = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  const day = amzDate.slice(0, 8);
  const scope = `${day}/${region}/kinesisvideo/aws4_request`;
  const canonical = ["POST", url.pathname, "", `host:${url.host}`, `x-amz-date:${amzDate}`, "", "host;x-amz-date", await sha256(payload)].join("\n");
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, await sha256(canonical)].join("\n");
  let key: ArrayBuffer = await hmac(enc.encode(`AWS4${secret}`) as Uint8Array<ArrayBuffer>, day);
  for (const part of [region, "kinesisvideo", "aws4_request"]) key = await hmac(key, part);
  const signature = hex(await hmac(key, toSign));
  const res = await fetch(url, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      "X-Amz-Date": amzDate,
      Authorization: `AWS4-HMAC-SHA256 Credential=${akid}/${scope}, SignedHeaders=host;x-amz-date, Signature=${signature}`,
    },
    body: payload,
  });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

async function main() {
  const endpoint = q.get("endpoint") ?? "";
  const region = q.get("region") ?? "us-west-2";
  const described = await signedPost(endpoint, "/describeSignalingChannel", { ChannelName: q.get("channel") });
  const channelARN: string = described.ChannelInfo.ChannelARN;
  const endpoints = await signedPost(endpoint, "/getSignalingChannelEndpoint", {
    ChannelARN: channelARN,
    SingleMasterChannelEndpointConfiguration: { Protocols: ["WSS", "HTTPS"], Role: KVSWebRTC.Role.MASTER },
  });
  const byProtocol: Record<string, string> = {};
  for (const e of endpoints.ResourceEndpointList) byProtocol[e.Protocol] = e.ResourceEndpoint;
  const ice = await signedPost(byProtocol.HTTPS!, "/v1/get-ice-server-config", { ChannelARN: channelARN, ClientId: undefined, Service: "TURN" });
  const iceServers: RTCIceServer[] = ice.IceServerList.map((s: { Uris: string[]; Username: string; Password: string }) => ({
    urls: s.Uris,
    username: s.Username,
    credential: s.Password,
  }));
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  (document.getElementById("local") as HTMLVideoElement).srcObject = stream;

  const client = new KVSWebRTC.SignalingClient({
    channelARN,
    channelEndpoint: byProtocol.WSS!,
    role: KVSWebRTC.Role.MASTER,
    region,
    credentials: { accessKeyId: q.get("akid") ?? "", secretAccessKey: q.get("secret") ?? "" },
    systemClockOffset: 0,
  });
  const peers = new Map<string, RTCPeerConnection>();
  let offers = 0;
  client.on("open", () => send({ kind: "camera-open", channelARN }));
  client.on("close", () => {
    send({ kind: "camera-closed" });
    setTimeout(() => client.open(), 100); // the sample reopens signaling
  });
  client.on("error", (e) => send({ kind: "camera-error", message: String(e) }));
  client.on("sdpOffer", async (offer, remoteClientId) => {
    offers++;
    peers.get(remoteClientId)?.close(); // a new connection for every offer
    const pc = new RTCPeerConnection({ iceServers });
    peers.set(remoteClientId, pc);
    for (const track of stream.getTracks()) pc.addTrack(track, stream);
    pc.onicecandidate = ({ candidate }) => {
      if (candidate) client.sendIceCandidate(candidate, remoteClientId);
    };
    pc.onconnectionstatechange = () => send({ kind: "camera-peer", remoteClientId, state: pc.connectionState });
    await pc.setRemoteDescription(offer);
    await pc.setLocalDescription(await pc.createAnswer());
    client.sendSdpAnswer(pc.localDescription!, remoteClientId);
    send({ kind: "camera-answered", remoteClientId, offers });
  });
  client.on("iceCandidate", (c, remoteClientId) => {
    peers.get(remoteClientId)?.addIceCandidate(c).catch(() => {});
  });
  client.open();
}

main().catch((e) => send({ kind: "camera-error", message: String(e) }));

export {};
