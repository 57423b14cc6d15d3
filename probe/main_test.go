package probe_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The tests run real probes: the KVS emulator and its camera, the kvs
// client, a session manager and pion (internal/stacktest).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
