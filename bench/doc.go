// Package bench measures the Viewer Session Service the way
// docs/BENCHMARKS.md reports it: the whole service assembled in one process
// (the KVS emulator with simulated cameras, the kvs client, the clientId
// allocator, the session store, the session manager and the gRPC server on
// loopback), driven by thin clients over gRPC, each figure set against a
// baseline measured in the same run:
//
//   - OfferAnswer: offer -> answer latency through the service against the
//     same exchange made directly on the emulator's signaling WebSocket.
//   - CreateRate: CreateSession per second on Redis against a bare Redis
//     SET NX round trip at the same concurrency.
//   - Memory: heap and RSS per live session.
//   - ControlPlane: KVS control-plane calls per channel and per viewer over
//     a simulated ten minutes (TTLs scaled down, not the clock).
//   - Recovery: time to recover from a network change, by ICE restart and
//     by full reconnect, with a real pion thin client.
//   - TimerAccuracy: how far the retry's second offer leaves from
//     retry_delay after the first answer timeout, seen at the emulator.
//
// The benchmarks of this package (go test -bench) run small versions of
// each; cmd/vsload runs the full sizes and prints the tables of
// docs/BENCHMARKS.md. Every run is bounded by its context and stops by
// itself; nothing here is a timed unit test.
package bench
