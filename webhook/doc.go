// Package webhook sends a session's lifecycle to backends as signed HTTP
// webhooks: session.created, session.media_flowing (the first video),
// session.recovered (outage and ladder step), session.failed (reason) and
// session.closed. docs/WEBHOOKS.md is the receivers' guide.
//
// # Events
//
// A Dispatcher is fed by the session actors through Observer (a
// sessionmgr.SessionObserver): FromTimeline maps the timeline's CREATED,
// MEDIA_FLOWING, RECOVERED, FAILED and CLOSED to the five types; every
// other event sends nothing. Observe never blocks an actor: it puts the
// event in a bounded buffer, and when that is full it drops the event and
// counts it (vss_webhook_dropped_total{reason="buffer_full"}).
//
// # Signature
//
// Each attempt carries SignatureHeader, "t=<unix>,v1=<hex>", the
// HMAC-SHA256 with the shared secret of "<t>.<body>". Verify checks it and
// refuses timestamps outside a window (DefaultTolerance, 5 minutes), so a
// captured request cannot be replayed later; receivers dedupe by the
// event's id within that window and beyond.
//
// # Delivery
//
// At least once: every event goes to every URL, retried with exponential
// backoff and jitter until a 2xx, up to MaxAttempts. With Redis the queue
// is shared by every replica:
//
//	vs:v1:{webhooks}:q          stream: one entry per event and URL
//	                            ({u: URL, b: body}), trimmed to about
//	                            MaxQueue (XADD MAXLEN ~); consumer group
//	                            "deliver", one consumer per replica id
//	vs:v1:{webhooks}:once:media:sessions/<id>
//	                            string with a TTL: the session's first video
//	                            was queued (set in the same script as the
//	                            XADD, so only one replica sends it)
//
// Both share the hash tag {webhooks}, so the add script stays in one slot
// on Redis Cluster. Each replica reads new entries with XREADGROUP,
// delivers them (its workers bound how many at once), and removes each
// (XACK and XDEL) once delivered or given up. While it works on an entry,
// it touches it every ClaimIdle/3 (XCLAIM to itself, JUSTID), so the
// entry never looks idle; a replica that dies stops touching, and after
// ClaimIdle another replica claims its entries (XAUTOCLAIM) and finishes
// them. An entry delivered just before its replica died, not yet removed,
// is sent again: receivers dedupe by id.
//
// Without Redis the queue is in memory (one replica), with the same
// retries; what it holds is lost when the process stops.
package webhook
