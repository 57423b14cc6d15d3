// Package realnet measures recovery after a network change on a real
// network: the service (cmd/server -dev, with its embedded KVS emulator and
// simulated camera) in a "cloud" network namespace, viewerctl in a "viewer"
// namespace with two real links, wifi and lte, and the link changes a phone
// goes through made with the kernel's own tools (ip, ss -K, nft).
//
// Its tests are behind the build tag realnet (`go test ./...` skips them);
// `make test-net` runs them as root:
//
//	go test -tags realnet -count=1 -v ./e2e/realnet/
//
// What it measures is what the user sees: from the link going down to the
// first 100 ms media sample of viewerctl whose packet counter grows again,
// sustained (REALNET_DEBUG=1 prints the raw lines around each change).
// See docs/BENCHMARKS.md figure (e) for the topology, the scenarios and
// the figures.
package realnet
