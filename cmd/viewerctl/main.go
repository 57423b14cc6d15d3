// Command viewerctl is a thin viewer for the Viewer Session Service: a real
// WebRTC peer (pion) driven by the service, the way a phone app would be.
//
//	viewerctl watch -api-key KEY -channel demo-camera -duration 10s
//	viewerctl watch -api-key KEY -channel demo-camera -fault no-answer -answer-timeout 5s -retry-delay 2s -duration 20s
//	viewerctl sessions -api-key KEY -channel demo-camera -all
//	viewerctl get -api-key KEY sessions/ID
//	viewerctl timeline -api-key KEY -follow sessions/ID
//	viewerctl close -api-key KEY sessions/ID
//
// watch creates a session with the backend API key, joins it as the app with
// the session token (gathering on the machine's real interfaces and watching
// them), prints the session's timeline and the received video's statistics
// as they happen, closes the session at the end, sums up (time to first
// video, outages, black time) and exits 0 only when the session reached
// CONNECTED, video arrived and still flows at the end, and every outage
// recovered with video; -json prints JSON lines for scripts. sessions lists
// the sessions of a channel (with -all also the ended ones and why they
// ended); get, close and timeline print, close and print the timeline of
// one session, by name. Every flag has a default; -addr and -api-key also
// come from VIEWERCTL_ADDR and VIEWERCTL_API_KEY; -tls, -ca and
// -server-name dial a server that serves TLS. Run `viewerctl help` for the
// full list.
//
// viewerctl never prints the session token or TURN credentials.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode prints err (if any) and returns the process's exit code: 0 on
// success or -h, 2 on a command-line error, 1 otherwise.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "viewerctl:", err)
		fmt.Fprintln(stderr, "run `viewerctl help` or `viewerctl COMMAND -h` for usage")
		return 2
	}
	fmt.Fprintln(stderr, "viewerctl:", err)
	return 1
}

const usage = `viewerctl is a thin viewer for the Viewer Session Service.

Usage:
  viewerctl watch    -api-key KEY -channel NAME [flags]   watch a channel's camera
  viewerctl sessions -api-key KEY -channel NAME [flags]   list who is watching
  viewerctl get      -api-key KEY SESSION                 print a session
  viewerctl close    -api-key KEY SESSION                 close a session
  viewerctl timeline -api-key KEY [-follow] SESSION       print a session's timeline
  viewerctl help                                          this text

Run "viewerctl COMMAND -h" for a command's flags.
-addr and -api-key also come from VIEWERCTL_ADDR and VIEWERCTL_API_KEY.
Against a server with -tls-cert add -tls (the system's CAs), -ca FILE or
-server-name NAME.
`

// run runs the command named by args[0] until it is done or ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command", errUsage)
	}
	switch args[0] {
	case "watch":
		cfg, err := parseWatch(args[1:], os.Getenv, stderr)
		if err != nil {
			return err
		}
		return watch(ctx, cfg, stdout, stderr)
	case "sessions":
		cfg, err := parseSessions(args[1:], os.Getenv, stderr)
		if err != nil {
			return err
		}
		return sessions(ctx, cfg, stdout)
	case "get", "close", "timeline":
		cfg, err := parseSession(args[0], args[1:], os.Getenv, stderr)
		if err != nil {
			return err
		}
		switch args[0] {
		case "get":
			return getSession(ctx, cfg, stdout)
		case "close":
			return closeSession(ctx, cfg, stdout)
		}
		return printTimeline(ctx, cfg, stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}
