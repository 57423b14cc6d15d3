// Package thinclient is a thin viewer app for the Viewer Session Service: a
// real pion peer connection (receive-only video) driven entirely by the
// service, the way a phone app would be. End-to-end tests use it, and so
// does the viewerctl command.
//
// A Client joins its session (Connect mode: one bidi Connect stream; Signal
// mode: unary Signal calls plus a WatchSession stream), builds its peer
// connection with the session's ICE servers, sends its offer and trickles
// its candidates, applies the camera's answer and candidates, reports every
// ICE and peer-connection state change and its media counters, and follows
// the service's instructions: renegotiate (ICE restart on the same peer
// connection, or a new peer connection) and going-away (reopen the stream
// after the last sequence seen). Both modes drive the same logic: the
// client acts on timeline events, which carry the answer, candidates,
// renegotiate and going-away in both modes, and keeps the timeline
// contiguous and free of duplicates.
//
// # A control stream that survives the network
//
// Every app message (offer, candidate, state report, network-changed,
// leave, media report) carries an app sequence number: 1, 2, 3 ... per
// session, across streams, connections and modes. The client keeps each
// numbered message until the service acknowledges it (an Ack on Connect;
// acked_app_sequence in Joined, in a SignalResponse and in every event),
// and a new stream first resends, in order and with the same numbers,
// everything above the acknowledged number; the service applies each
// number once. In Signal mode a call's reply settles its message, and a
// call cut short by a re-dial may overlap its resend: the service handles
// each number once, whatever the order.
//
// About once a second (Config.MediaInterval) while the stream is open the
// client sends a MediaReport: the current peer connection's cumulative
// video packets, payload bytes and complete frames (this client does not
// decode: a frame counts when its marker-bit packet arrives), under a
// peer_connection_id that changes with every new peer connection (0 and
// zero counters when there is none). It sends one at once when video
// starts on a peer connection or resumes after a gap, so that the service
// sees a recovery when it happens. The service sees video, not ICE
// states; the reports are also the app's heartbeat. A sequenced message
// (or a join) unanswered within Config.AckTimeout means the connection is
// dead, often a TCP socket left on a path that no longer exists: the
// client abandons the stream and the gRPC connection, dials a fresh one
// (Config.Dial), resumes after its last event and resends. A stream that
// breaks (a killed socket) does the same at once. Dial attempts are bounded
// by AckTimeout each and back off from 25 ms to 1 s; 20 failures in a row
// (at least 15 s without a working stream) end Run.
//
// # Networks
//
// With Config.HostNetwork the client gathers host candidates on the
// machine's real interfaces (IPv4; loopback too, so that a camera on the
// same machine works) and watches the network by polling: every 200 ms it
// reads the interfaces and their addresses (net.Interfaces) and the
// default route (/proc/net/route on Linux; elsewhere only addresses are
// watched). Polling was chosen over a netlink subscription because it
// needs no dependency and no privileges, works the same in a network
// namespace and on any OS the standard library knows, and 200 ms is small
// beside the seconds a recovery takes; its cost is a few netlink dumps a
// second. Any difference makes pion re-read the interfaces (pion's
// stdnet.Net caches them; the client swaps in a fresh one), so the next
// ICE restart or new peer connection gathers on the current ones. A
// default route that moves to another interface or gateway (or appears),
// or the loss of the address the current ICE pair uses, is a network
// change: the client re-dials its control stream at once and sends
// network_changed (sequenced, so the new stream carries it), and the
// service starts recovery. A route or interface that only disappears is
// not reported: it may come back unchanged (a flap, which heals by itself
// without a recovery), and there is no path to recover over until a route
// exists again. Config.NoNetworkWatch turns the watching off: recovery
// then relies on the ICE states the client reports and on media the
// service sees stall.
//
// Without HostNetwork the client runs on a SwitchNet, the loopback path of
// in-process tests: it simulates a network change on loopback, where the
// client's traffic uses one 127.x address at a time and switching retires
// the old one; the app then reports the change with NetworkChanged, which
// re-dials and reports just as a detected change does.
//
// The client never logs the session token or TURN credentials.
package thinclient
