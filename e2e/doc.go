// Package e2e runs the Viewer Session Service as it is deployed: several
// server processes (cmd/server) sharing one real redis-server, against the
// local KVS (kvsemu) with simulated cameras, driven by thin clients on real
// pion peer connections. Its tests are the many-replica acceptance: one
// timeline across replicas, the channel limit across replicas, failover
// after SIGKILL (also of an owner whose app streams another replica
// forwarded), draining on SIGTERM, and a Redis outage.
//
// Everything is on loopback. The tests build the server once (with -race
// when the tests run with -race) and need a redis-server binary
// (REDIS_SERVER_BIN or PATH); without one they are skipped, or fail when CI
// is set.
package e2e
