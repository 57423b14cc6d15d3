//go:build realnet

package realnet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/acme/viewersession/internal/netns"
)

// unavailable says why namespaces cannot be created here; tests skip with
// it. It is the only reason to skip.
var unavailable error

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	unavailable = netns.Check(ctx)
	if unavailable == nil {
		// A run that was killed leaves its namespaces (and processes in
		// them) behind: remove those of this suite whose run is gone.
		swept, err := netns.Sweep(ctx, nsPrefix)
		if err != nil {
			fmt.Fprintln(os.Stderr, "realnet: sweep:", err)
		}
		if len(swept) > 0 {
			fmt.Fprintln(os.Stderr, "realnet: removed stale namespaces:", swept)
		}
	}
	cancel()
	if unavailable != nil {
		fmt.Fprintf(os.Stderr, "realnet: SKIP: network namespaces cannot be created here: %v\n", unavailable)
		goleak.VerifyTestMain(m)
		return
	}
	dir, err := os.MkdirTemp("", "vsrn-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "realnet:", err)
		os.Exit(1)
	}
	binDir = dir
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		printFigure(os.Stdout)
		_ = os.RemoveAll(dir)
		os.Exit(code)
	}))
}

var (
	binDir    string // TestMain's temporary directory
	buildOnce sync.Once
	buildErr  error
)

// needBinaries builds cmd/server and cmd/viewerctl once, for the tests that
// run them.
func needBinaries(t *testing.T) {
	t.Helper()
	buildOnce.Do(func() {
		start := time.Now()
		bins, buildErr = build(binDir)
		if buildErr == nil {
			fmt.Fprintf(os.Stderr, "realnet: built cmd/server and cmd/viewerctl in %v\n", time.Since(start).Round(time.Millisecond))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// needNet skips the test where namespaces cannot be created: the only
// reason this suite skips.
func needNet(t *testing.T) {
	t.Helper()
	if unavailable != nil {
		t.Skipf("skipping: network namespaces cannot be created here: %v", unavailable)
	}
}

// needTools fails the test when a tool it drives is missing.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (make test-net installs iproute2, nftables and procps): %v", tool, err)
		}
	}
}
