package service_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The end-to-end tests of this package run the whole service in process
// (internal/stacktest).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
