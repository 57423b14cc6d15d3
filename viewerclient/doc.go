// Package viewerclient is the app's half of the Viewer Session Service's
// protocol, for Go programs: a viewer app that joins a session, runs a real
// pion peer connection (receive-only video) as the service directs, and
// keeps the session alive across dropped streams and network changes.
//
// It is named for what it is, the client a viewer app runs. A backend,
// which creates sessions with its API key and hands the app a session name
// and token, needs only the generated gRPC client
// (github.com/acme/viewersession/proto/viewersession/v1). The package is
// not called client, a name that collides with the variable every caller
// already has, nor thinclient, its internal name while only tests and
// viewerctl used it; its import path is
// github.com/acme/viewersession/viewerclient.
//
// # Use
//
// A Client runs one session. Give New a way to dial the service (Dialer
// makes one from an address and transport credentials), the session's
// name and token from the backend, and its ICE servers; call Run, which
// returns when the session ends; observe it with Config.OnEvent (every
// timeline event: the answer, the camera's candidates, state changes,
// recoveries), Events, WaitEvent, WaitRTP and Stats; end it with Leave.
//
//	c, err := viewerclient.New(viewerclient.Config{
//		Dial:       viewerclient.Dialer("viewer.example.com:443", credentials.NewTLS(nil)),
//		Session:    resp.GetSession().GetName(), // from the backend's CreateSession
//		Token:      resp.GetSessionToken(),
//		IceServers: resp.GetSession().GetIceServers(),
//	})
//	if err != nil {
//		return err
//	}
//	err = c.Run(ctx) // nil once the session is CLOSED; a *FailedError when it FAILED
//
// The examples start a whole service in the test process and run against
// it; `go test` checks their output.
//
// # Compatibility
//
// The exported identifiers of this package follow semantic versioning of
// the module github.com/acme/viewersession: within a major version, an
// exported name is not removed, and its signature and documented behaviour
// change only compatibly. The module has no v1 tag yet; until it has one,
// an incompatible change remains possible, and its release notes say so.
//
// Stable: New, Config and its fields, Client and its methods, Dialer, the
// Mode, RedialReason and duration constants, Stats, MediaCounters, Gap,
// the sentinel errors and FailedError (match them with errors.Is and
// errors.As, a failure's gRPC status with status.Code), and what this doc
// and each identifier's doc promise: events in order without duplicates,
// messages resent with their numbers, what Run returns.
//
// Added without notice, in minor versions: fields of Config and Stats
// (write struct literals with field names), methods, constants and error
// values. May change without notice: the text of error messages and log
// records, and their keys (match errors by value, never by text); the
// tuning that is not a Config field (the dial backoff, the network poll
// interval, when media reports go out early); the defaults of Config's
// durations (set a field to pin it). Not covered: the types of
// proto/viewersession/v1 that the API passes through (SessionEvent,
// IceServer, the enums), which follow the viewersession.v1 proto package's
// rules; and pion's transport.Net and grpc's ClientConn, whose new major
// versions would need a new major version of this module. The internal
// packages (such as internal/switchnet, the loopback network the tests
// use) are no part of the API.
//
// # How it works
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
// By default the client gathers host candidates on the machine's real
// interfaces (IPv4; loopback too, so that a camera on the
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
// With Config.Net the client runs on the network given instead (in tests, a
// loopback simulation of a network change, where the client's traffic uses
// one 127.x address at a time and switching retires the old one), which it
// does not watch: the app reports a change with NetworkChanged, which
// re-dials and reports just as a detected change does.
//
// The client never logs the session token or TURN credentials.
package viewerclient
