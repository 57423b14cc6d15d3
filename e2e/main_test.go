package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// serverBin is the server binary TestMain builds before any test runs;
// tests only read it.
var serverBin string

func TestMain(m *testing.M) {
	if os.Getenv("ATTACK_ADDR") != "" {
		os.Exit(m.Run()) // an attacker process (attack_test.go): no server of its own
	}
	dir, err := os.MkdirTemp("", "vs-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	bin, err := buildServer(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	serverBin = bin
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		_ = os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// buildServer builds cmd/server into dir, with -race when the tests run
// with it.
func buildServer(dir string) (string, error) {
	bin := filepath.Join(dir, "server")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/acme/viewersession/cmd/server")
	start := time.Now()
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %v: %w", args, err)
	}
	fmt.Fprintf(os.Stderr, "e2e: built the server (race=%v) in %v\n", raceEnabled, time.Since(start).Round(time.Millisecond))
	return bin, nil
}
