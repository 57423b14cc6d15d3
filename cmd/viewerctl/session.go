package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/metadata"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// sessionConfig is the configuration of `viewerctl get`, `close` and
// `timeline`: one session, by name.
type sessionConfig struct {
	commonConfig        // Channel and Region unused
	Name         string // "sessions/ID"; a bare ID gets the prefix
	Follow       bool   // timeline: print new events until the session ends
	Verbose      bool   // timeline: also camera candidates and connection states
}

// sessionCommands are the one-session commands and what they do.
var sessionCommands = map[string]string{
	"get":      "Prints the session: its state, attempt, clientId, times and, once it ended, why.",
	"close":    "Closes the session (CloseSession): the app is told and the camera's peer connection ends.",
	"timeline": "Prints the session's timeline, one line per event and per state change; -follow keeps printing new events until the session ends.",
}

// parseSession parses the arguments of `viewerctl get|close|timeline`:
// flags and the session's name, before or after them.
func parseSession(cmd string, args []string, getenv func(string) string, stderr io.Writer) (sessionConfig, error) {
	var c sessionConfig
	fs := flag.NewFlagSet("viewerctl "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addService(fs, &c.commonConfig)
	if cmd == "timeline" {
		fs.BoolVar(&c.Follow, "follow", false, "keep printing new events until the session ends (or until interrupted)")
		fs.BoolVar(&c.Verbose, "v", false, "also print camera ICE candidates and the app's connection-state reports")
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: viewerctl %s -api-key KEY [flags] SESSION\n\n", cmd)
		fmt.Fprintf(fs.Output(), "%s\nSESSION is the session's name (sessions/ID, as watch and sessions print it) or its ID.\n\nFlags:\n", sessionCommands[cmd])
		fs.PrintDefaults()
	}
	rest, err := parseArgs(fs, args)
	if err != nil {
		return c, err
	}
	if len(rest) > 0 { // the name, and maybe more flags after it
		c.Name = rest[0]
		if rest, err = parseArgs(fs, rest[1:]); err != nil {
			return c, err
		}
		if len(rest) > 0 {
			return c, fmt.Errorf("%w: unexpected argument %q: %s takes one session", errUsage, rest[0], fs.Name())
		}
	}
	problems := fillService(fs, &c.commonConfig, getenv)
	switch {
	case c.Name == "":
		problems = append(problems, "the session's name is required, e.g. viewerctl "+cmd+" sessions/ID (viewerctl sessions lists them)")
	case !strings.HasPrefix(c.Name, "sessions/"):
		c.Name = "sessions/" + c.Name
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("%w: %s", errUsage, strings.Join(problems, "; "))
	}
	return c, nil
}

// parseArgs parses flags up to the first argument that is not one and
// returns the arguments from there, like parseFlags for commands that take
// an argument.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("%w: %w", errUsage, explainFlagError(fs, err))
	}
	return fs.Args(), nil
}

// sessionAPI dials the service and returns its client and a context with
// the backend API key; close the connection when done.
func sessionAPI(ctx context.Context, cfg commonConfig) (vspb.ViewerSessionServiceClient, context.Context, func(), error) {
	conn, err := dialConfig(cfg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: -addr %q: %w", errUsage, cfg.Addr, err)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+cfg.APIKey)
	return vspb.NewViewerSessionServiceClient(conn), ctx, func() { conn.Close() }, nil
}

// getSession runs `viewerctl get`.
func getSession(ctx context.Context, cfg sessionConfig, stdout io.Writer) error {
	api, ctx, done, err := sessionAPI(ctx, cfg.commonConfig)
	if err != nil {
		return err
	}
	defer done()
	cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := api.GetSession(cctx, &vspb.GetSessionRequest{Name: cfg.Name})
	if err != nil {
		return withHint(cfg.Addr, rpcError("get session", err))
	}
	return writeSession(stdout, resp.GetSession(), time.Local)
}

// closeSession runs `viewerctl close`.
func closeSession(ctx context.Context, cfg sessionConfig, stdout io.Writer) error {
	api, ctx, done, err := sessionAPI(ctx, cfg.commonConfig)
	if err != nil {
		return err
	}
	defer done()
	cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := api.CloseSession(cctx, &vspb.CloseSessionRequest{Name: cfg.Name})
	if err != nil {
		return withHint(cfg.Addr, rpcError("close session", err))
	}
	s := resp.GetSession()
	fmt.Fprintf(stdout, "%s %s [%s]\n", s.GetName(), trimEnum(s.GetState().String(), "SESSION_STATE_"), sessionReason(s))
	return nil
}

// printTimeline runs `viewerctl timeline`: the events so far (up to the
// session's last sequence when it starts), or with -follow every event
// until the session ends.
func printTimeline(ctx context.Context, cfg sessionConfig, stdout io.Writer) error {
	api, ctx, done, err := sessionAPI(ctx, cfg.commonConfig)
	if err != nil {
		return err
	}
	defer done()
	gctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	got, err := api.GetSession(gctx, &vspb.GetSessionRequest{Name: cfg.Name})
	cancel()
	if err != nil {
		return withHint(cfg.Addr, rpcError("get session", err))
	}
	last := got.GetSession().GetLastSequence()
	if last == 0 && !cfg.Follow {
		return nil
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	stream, err := api.WatchSession(wctx, &vspb.WatchSessionRequest{Name: cfg.Name})
	if err != nil {
		return withHint(cfg.Addr, rpcError("watch session", err))
	}
	tl := timeline{loc: time.Local, verbose: cfg.Verbose}
	defer func() {
		for _, l := range tl.flush() {
			fmt.Fprintln(stdout, l)
		}
	}()
	for {
		resp, err := stream.Recv()
		switch {
		case errors.Is(err, io.EOF):
			return nil // the session ended
		case err != nil && cfg.Follow && ctx.Err() != nil:
			return nil // interrupted
		case err != nil:
			return withHint(cfg.Addr, rpcError("watch session", err))
		}
		e := resp.GetEvent()
		for _, l := range tl.add(e) {
			fmt.Fprintln(stdout, l)
		}
		if !cfg.Follow && e.GetSequence() >= last {
			return nil
		}
	}
}

// writeSession prints one session, a field a line. It prints no secret:
// GetSession without include_ice_credentials carries none.
func writeSession(w io.Writer, s *vspb.Session, loc *time.Location) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	at := func(name string, t interface{ AsTime() time.Time }) {
		fmt.Fprintf(tw, "%s:\t%s\n", name, t.AsTime().In(loc).Format("2006-01-02 15:04:05.000"))
	}
	o := s.GetOptions()
	fmt.Fprintf(tw, "name:\t%s\n", s.GetName())
	fmt.Fprintf(tw, "viewer:\t%s\n", s.GetViewerId())
	fmt.Fprintf(tw, "channel:\t%s\n", s.GetChannel().GetArn())
	fmt.Fprintf(tw, "state:\t%s\n", trimEnum(s.GetState().String(), "SESSION_STATE_"))
	fmt.Fprintf(tw, "reason:\t%s\n", sessionReason(s))
	if m := s.GetFailure().GetMessage(); m != "" {
		fmt.Fprintf(tw, "failure:\t%s\n", m)
	}
	fmt.Fprintf(tw, "attempt:\t%d\n", s.GetAttempt())
	fmt.Fprintf(tw, "client id:\t%s\n", orDash(s.GetClientId()))
	fmt.Fprintf(tw, "options:\tanswer timeout %v, retry delay %v, %d attempts, ICE-restart timeout %v\n",
		o.GetAnswerTimeout().AsDuration(), o.GetRetryDelay().AsDuration(), o.GetMaxAttempts(), o.GetIceRestartTimeout().AsDuration())
	at("created", s.GetCreateTime())
	at("updated", s.GetUpdateTime())
	if s.GetExpireTime() != nil {
		at("expires", s.GetExpireTime())
	}
	fmt.Fprintf(tw, "events:\t%d (viewerctl timeline %s)\n", s.GetLastSequence(), s.GetName())
	return tw.Flush()
}
