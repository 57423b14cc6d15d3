// Inbound video counters from RTCPeerConnection.getStats.

/** MediaStats is what the page can show of the video being received. */
export interface MediaStats {
  /** Identifies the peer connection (1 for the first, one more for each new one; 0: none). */
  peerConnectionId: number;
  /** RTP video packets received on this peer connection. */
  packetsReceived: number;
  /** Video payload bytes received on this peer connection. */
  bytesReceived: number;
  /** Video frames decoded on this peer connection. */
  framesDecoded: number;
  /** Frames decoded per second over the last interval. */
  framesPerSecond: number;
  /** Received video bit rate over the last interval, bits per second. */
  bitrate: number;
  /** Decoded frame size, 0 before the first frame. */
  frameWidth: number;
  frameHeight: number;
  /** Packets lost, as the receiver counts them. */
  packetsLost: number;
  /** Inter-arrival jitter, seconds. */
  jitter: number;
  /** The codec's MIME type, e.g. "video/VP8". */
  codec: string;
  /** The selected ICE pair's local and remote candidate types ("host", "relay" ...). */
  localCandidateType: string;
  remoteCandidateType: string;
  /** The selected pair's round-trip time, seconds (0 when unknown). */
  roundTripTime: number;
  /** When these counters were read (performance.now(), ms). */
  at: number;
}

export const noMedia: MediaStats = {
  peerConnectionId: 0,
  packetsReceived: 0,
  bytesReceived: 0,
  framesDecoded: 0,
  framesPerSecond: 0,
  bitrate: 0,
  frameWidth: 0,
  frameHeight: 0,
  packetsLost: 0,
  jitter: 0,
  codec: "",
  localCandidateType: "",
  remoteCandidateType: "",
  roundTripTime: 0,
  at: 0,
};

type Stat = Record<string, unknown> & { id: string; type: string };

const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0);
const str = (v: unknown): string => (typeof v === "string" ? v : "");

/**
 * readMedia turns a stats report into MediaStats; prev (the previous
 * reading of the same peer connection) gives the rates.
 */
export function readMedia(report: Iterable<Stat>, pcId: number, at: number, prev?: MediaStats): MediaStats {
  const byId = new Map<string, Stat>();
  for (const s of report) {
    byId.set(s.id, s);
  }
  const out: MediaStats = { ...noMedia, peerConnectionId: pcId, at };
  let pair: Stat | undefined;
  for (const s of byId.values()) {
    if (s.type === "inbound-rtp" && (s.kind === "video" || s.mediaType === "video")) {
      out.packetsReceived += num(s.packetsReceived);
      out.bytesReceived += num(s.bytesReceived);
      out.framesDecoded += num(s.framesDecoded);
      out.packetsLost += num(s.packetsLost);
      out.jitter = Math.max(out.jitter, num(s.jitter));
      out.frameWidth = num(s.frameWidth) || out.frameWidth;
      out.frameHeight = num(s.frameHeight) || out.frameHeight;
      const codec = byId.get(str(s.codecId));
      if (codec) {
        out.codec = str(codec.mimeType);
      }
    } else if (s.type === "transport" && s.selectedCandidatePairId) {
      pair = byId.get(str(s.selectedCandidatePairId));
    } else if (!pair && s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
      pair = s;
    }
  }
  if (pair) {
    out.localCandidateType = str(byId.get(str(pair.localCandidateId))?.candidateType);
    out.remoteCandidateType = str(byId.get(str(pair.remoteCandidateId))?.candidateType);
    out.roundTripTime = num(pair.currentRoundTripTime);
  }
  if (prev && prev.peerConnectionId === pcId && at > prev.at) {
    const secs = (at - prev.at) / 1000;
    out.framesPerSecond = Math.max(0, (out.framesDecoded - prev.framesDecoded) / secs);
    out.bitrate = Math.max(0, ((out.bytesReceived - prev.bytesReceived) * 8) / secs);
  }
  return out;
}
