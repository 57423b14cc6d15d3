// What the browser says about its network: online/offline and, where
// present (Chromium, Android WebView), navigator.connection's changes.

/** The parts of window and navigator the watcher listens to. */
export interface NetworkEnv {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
  readonly navigator?: {
    readonly onLine?: boolean;
    readonly connection?: {
      readonly type?: string;
      readonly effectiveType?: string;
      addEventListener(type: string, listener: () => void): void;
      removeEventListener(type: string, listener: () => void): void;
    };
  };
}

/** A network change the watcher saw. */
export interface NetworkChange {
  /** "online", "offline" or "connection". */
  kind: "online" | "offline" | "connection";
  /** For the timeline, e.g. "connection wifi -> cellular". */
  description: string;
}

/**
 * watchNetwork calls onChange on every network change the browser reports
 * and returns a function that stops watching. A navigator.connection
 * change that alters neither the type nor the effective type (a new
 * bandwidth estimate) is not a change of network.
 */
export function watchNetwork(env: NetworkEnv, onChange: (c: NetworkChange) => void): () => void {
  const conn = env.navigator?.connection;
  const label = () => (conn ? conn.type || conn.effectiveType || "unknown" : "unknown");
  let last = label();
  let lastEffective = conn?.effectiveType ?? "";
  const online = () => onChange({ kind: "online", description: `browser online (${label()})` });
  const offline = () => onChange({ kind: "offline", description: "browser offline" });
  const changed = () => {
    const now = label();
    const effective = conn?.effectiveType ?? "";
    if (now === last && (conn?.type !== undefined || effective === lastEffective)) {
      return;
    }
    const description = `connection ${last} -> ${now}`;
    last = now;
    lastEffective = effective;
    onChange({ kind: "connection", description });
  };
  env.addEventListener("online", online);
  env.addEventListener("offline", offline);
  conn?.addEventListener("change", changed);
  return () => {
    env.removeEventListener("online", online);
    env.removeEventListener("offline", offline);
    conn?.removeEventListener("change", changed);
  };
}
