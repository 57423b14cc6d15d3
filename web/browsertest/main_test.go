//go:build browser

package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/acme/viewersession/internal/netns"
)

// nsPrefix starts the name of every namespace this suite creates.
const nsPrefix = "vsbt"

// bins are the binaries under test, built once.
var bins struct {
	server, emulator string
}

// webDir is web/, where the driver and the built test pages are.
var webDir string

// skipReason is why the suite cannot run here (not root, no chromium...);
// with CI set a missing prerequisite fails instead of skipping.
var skipReason string

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "browsertest:", err)
		os.Exit(1)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "browsertest: leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	wd, err := os.Getwd()
	if err != nil {
		return 0, err
	}
	webDir = filepath.Dir(wd)
	if err := netns.Check(ctx); err != nil {
		skipReason = err.Error()
	} else if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		skipReason = "no /usr/bin/chromium (apt-get install chromium)"
	}
	if skipReason != "" {
		if os.Getenv("CI") != "" {
			return 0, errors.New(skipReason)
		}
		return m.Run(), nil
	}
	if gone, err := netns.Sweep(ctx, nsPrefix); err != nil {
		return 0, err
	} else if len(gone) > 0 {
		fmt.Fprintf(os.Stderr, "browsertest: removed namespaces of dead runs: %v\n", gone)
	}
	dir, err := os.MkdirTemp("", "browsertest")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	bins.server = filepath.Join(dir, "server")
	bins.emulator = filepath.Join(dir, "kvs-emulator")
	for _, b := range []struct{ out, pkg string }{{bins.server, "./cmd/server"}, {bins.emulator, "./cmd/kvs-emulator"}} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.out, b.pkg)
		cmd.Dir = filepath.Dir(webDir)
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	cmd := exec.CommandContext(ctx, "node", "build.mjs", "--pages")
	cmd.Dir = webDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build the test pages: %v\n%s", err, out)
	}
	return m.Run(), nil
}

// needBrowser skips (or, under CI, fails) a test that cannot run here.
func needBrowser(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skipf("skipping: %s", skipReason)
	}
}
