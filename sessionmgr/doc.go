// Package sessionmgr is the domain of the Viewer Session Service: viewer
// sessions, their state machine, timers, the answer-timeout retry and the
// network-change recovery policy, and each session's timeline.
//
// One goroutine (the actor) owns each live session: app messages, KVS
// signaling events and timers reach it over channels, and its state changes
// only through the pure function next. The package declares the interfaces
// it consumes (Store, Signaler, ClientIDs) and imports no gRPC, protobuf,
// go-redis or AWS package.
package sessionmgr
