package bench

import (
	"context"
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) {
		if built.dir != "" {
			_ = os.RemoveAll(built.dir)
		}
	}))
}

// built is the server binary the package's tests share: built once, by
// the first test that needs it.
var built struct {
	once     sync.Once
	dir, bin string
	err      error
}

// serverBin returns the server binary a test runs: VS_SERVER_BIN (another
// build), else one build of ./cmd/server shared by every test of the run.
// It skips the test with -short.
func serverBin(ctx context.Context, t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	if bin := os.Getenv("VS_SERVER_BIN"); bin != "" {
		return bin
	}
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "bench-server-"); built.err == nil {
			built.bin, built.err = BuildServer(ctx, built.dir)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}
