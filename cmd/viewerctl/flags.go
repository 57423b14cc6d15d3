package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/acme/viewersession/viewerclient"
)

// Environment variables read when the matching flag is not given.
const (
	envAddr    = "VIEWERCTL_ADDR"
	envAPIKey  = "VIEWERCTL_API_KEY"
	envDevHTTP = "VIEWERCTL_DEV_HTTP"
)

// commonConfig is what every command needs: where the service is, the
// backend API key and the channel.
type commonConfig struct {
	Addr    string // gRPC address, host:port
	APIKey  string // backend API key. Secret: never printed.
	Channel string // channel name, or an ARN ("arn:...")
	Region  string // region of a channel given by name; empty = server default
	// TLS dials the service over TLS (-tls); CA is a PEM file of the CAs
	// to trust instead of the system's (-ca), ServerName the name the
	// certificate must carry instead of -addr's host (-server-name).
	// Either of those implies TLS.
	TLS        bool
	CA         string
	ServerName string
}

// transportCredentials are the credentials of the connections to the
// service: plaintext, or TLS 1.2+ checked against the system's roots or
// -ca, for -addr's host or -server-name.
func (c commonConfig) transportCredentials() (credentials.TransportCredentials, error) {
	if !c.TLS {
		return insecure.NewCredentials(), nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CA != "" {
		pool, err := loadCAs(c.CA)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return credentials.NewTLS(cfg), nil
}

// loadCAs reads a PEM file of CA certificates.
func loadCAs(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("-ca %s: no PEM certificate in the file", path)
	}
	return pool, nil
}

// watchConfig is the configuration of `viewerctl watch`.
type watchConfig struct {
	commonConfig
	ViewerID           string
	Duration           time.Duration // 0: until interrupted or the session ends
	Mode               viewerclient.Mode
	Fault              string // one of faults, or empty
	FaultDelay         time.Duration
	DevHTTP            string // base URL of the server's HTTP port (dev proxy)
	AnswerTimeout      time.Duration
	RetryDelay         time.Duration
	MaxAttempts        uint
	ICERestartTimeout  time.Duration
	NetworkChangeAfter time.Duration
	WatchNetwork       bool // watch the machine's interfaces and default route
	JSON               bool // JSON lines on stdout, the human output on stderr
	Verbose            bool
}

// sessionsConfig is the configuration of `viewerctl sessions`.
type sessionsConfig struct {
	commonConfig
	All bool // include ended (FAILED, CLOSED) sessions
}

// fault describes one -fault value: what it asks the emulator for, and
// whether that happens before connecting or once CONNECTED.
type fault struct {
	name      string
	emuFault  string // kvsemu.FaultRequest.Fault
	n         int
	connected bool // applied once CONNECTED, with the current clientId
	help      string
}

var faults = []fault{
	{name: "no-answer", emuFault: "no-answer", help: "the camera never answers: every attempt times out and the session FAILS with ANSWER_TIMEOUT"},
	{name: "late-answer", emuFault: "late-answer", help: "the camera answers attempt 1 after -fault-delay (default: the answer timeout + 1s, too late); lifted once the retry is scheduled, so attempt 2 connects"},
	{name: "answer-from-2", emuFault: "answer-from", n: 2, help: "the camera ignores the first offer and answers the second: attempt 1 times out, attempt 2 connects"},
	{name: "camera-offline", emuFault: "camera-offline", help: "the camera is switched off (back on at exit): no answer"},
	{name: "go-away", emuFault: "go-away", connected: true, help: "once CONNECTED, KVS sends GO_AWAY to the session's clientId: signaling reopens, media goes on"},
	{name: "reconnect-ice-server", emuFault: "reconnect-ice-server", connected: true, help: "once CONNECTED, KVS sends RECONNECT_ICE_SERVER: the session fetches fresh ICE servers"},
	{name: "drop-viewer", emuFault: "drop-viewer", connected: true, help: "once CONNECTED, the emulator drops the session's signaling WebSocket"},
}

func findFault(name string) (fault, bool) {
	i := slices.IndexFunc(faults, func(f fault) bool { return f.name == name })
	if i < 0 {
		return fault{}, false
	}
	return faults[i], true
}

func faultNames() []string {
	var names []string
	for _, f := range faults {
		names = append(names, f.name)
	}
	return names
}

// addCommon registers the flags of the commands that name a channel.
func addCommon(fs *flag.FlagSet, c *commonConfig) {
	addService(fs, c)
	fs.StringVar(&c.Channel, "channel", "", "KVS signaling `channel`: a name (e.g. demo-camera) or an ARN (required)")
	fs.StringVar(&c.Region, "region", "", "AWS region of a channel given by name (default: the server's)")
}

// addService registers the flags every command has: where the service
// is and the backend API key.
func addService(fs *flag.FlagSet, c *commonConfig) {
	fs.StringVar(&c.Addr, "addr", "localhost:50051", "`host:port` of the service's gRPC server (env "+envAddr+")")
	fs.StringVar(&c.APIKey, "api-key", "", "backend API `key`; the dev server prints one as \"dev API key\" (env "+envAPIKey+"; prefer the variable: flags are visible in ps)")
	fs.BoolVar(&c.TLS, "tls", false, "dial the service over TLS (a server started with -tls-cert), checking its certificate against the system's CAs")
	fs.StringVar(&c.CA, "ca", "", "PEM `file` of the CAs to trust for the service's certificate instead of the system's (implies -tls)")
	fs.StringVar(&c.ServerName, "server-name", "", "the `name` the service's certificate must carry, when it is not -addr's host (implies -tls)")
}

// fillCommon applies the environment to flags not given and checks what
// the commands that name a channel need.
func fillCommon(fs *flag.FlagSet, c *commonConfig, getenv func(string) string) []string {
	problems := fillService(fs, c, getenv)
	if c.Channel == "" {
		problems = append(problems, "-channel is required, e.g. -channel demo-camera")
	}
	if c.Region != "" && strings.HasPrefix(c.Channel, "arn:") {
		problems = append(problems, "-region goes with a channel name, not an ARN")
	}
	return problems
}

// fillService applies the environment to -addr and -api-key when not
// given and checks them.
func fillService(fs *flag.FlagSet, c *commonConfig, getenv func(string) string) []string {
	set := setFlags(fs)
	if !set["addr"] && getenv(envAddr) != "" {
		c.Addr = getenv(envAddr)
	}
	if !set["api-key"] {
		c.APIKey = getenv(envAPIKey)
	}
	var problems []string
	if c.Addr == "" {
		problems = append(problems, "-addr is empty")
	}
	if c.CA != "" || c.ServerName != "" {
		c.TLS = true
	}
	if c.CA != "" {
		if _, err := loadCAs(c.CA); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if c.APIKey == "" {
		problems = append(problems, "-api-key (or "+envAPIKey+") is required: the dev server prints one as \"dev API key\"")
	}
	return problems
}

func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// parseWatch parses `viewerctl watch` arguments; getenv supplies the
// VIEWERCTL_* variables.
func parseWatch(args []string, getenv func(string) string, stderr io.Writer) (watchConfig, error) {
	var c watchConfig
	fs := flag.NewFlagSet("viewerctl watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addCommon(fs, &c.commonConfig)
	var mode string
	fs.StringVar(&c.ViewerID, "viewer-id", defaultViewerID(getenv), "the viewer's id (CreateSession viewer_id; the base of its KVS clientId)")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "how long to watch, counted from when the app has joined the session (after creating it), before closing the session; 0 watches until interrupted or the session ends")
	fs.StringVar(&mode, "mode", "connect", "how the app talks to the service: connect (one Connect stream) or signal (Signal calls + WatchSession, like a browser)")
	fs.StringVar(&c.Fault, "fault", "", "ask the dev server's KVS emulator for a `fault`: "+strings.Join(faultNames(), ", ")+" (see below)")
	fs.DurationVar(&c.FaultDelay, "fault-delay", 0, "late-answer: how late the camera answers (default: the session's answer timeout + 1s)")
	fs.StringVar(&c.DevHTTP, "dev-http", "http://localhost:8080", "`URL` of the server's HTTP port, whose /dev/emulator/ proxy takes -fault (env "+envDevHTTP+")")
	fs.DurationVar(&c.AnswerTimeout, "answer-timeout", 0, "session option: wait for the camera's answer per attempt, 1s..300s (default: the server's, 30s)")
	fs.DurationVar(&c.RetryDelay, "retry-delay", 0, "session option: wait before the retry with a fresh clientId (default: the server's, 6s)")
	fs.UintVar(&c.MaxAttempts, "max-attempts", 0, "session option: signaling attempts per offer, 1..5 (default: the server's, 2)")
	fs.DurationVar(&c.ICERestartTimeout, "ice-restart-timeout", 0, "session option: how long the recovery ladder's ICE-restart step may take to bring video back before the next step, 500ms..60s (default: the server's, 1.5s)")
	fs.DurationVar(&c.NetworkChangeAfter, "network-change-after", 0, "simulate a network change on loopback: the client runs on 127.0.0.2 and moves to 127.0.0.3 this long after the session is first CONNECTED, then tells the service (0: no change; the client then uses the machine's real interfaces)")
	fs.BoolVar(&c.WatchNetwork, "watch-network", true, "watch the machine's interfaces, addresses and default route, and on a change re-dial and tell the service at once; false leaves recovery to what the service sees (ICE states, media that stalls). Ignored with -network-change-after")
	fs.BoolVar(&c.JSON, "json", false, "print JSON lines on stdout (see below) and the human output on stderr")
	fs.BoolVar(&c.Verbose, "v", false, "also print camera ICE candidates and the app's connection-state reports")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: viewerctl watch -api-key KEY -channel NAME [flags]\n\n")
		fmt.Fprintf(fs.Output(), "Creates a session, joins it as a thin app (a real WebRTC peer), prints the timeline and the\n")
		fmt.Fprintf(fs.Output(), "video statistics once a second, closes the session after -duration, and sums up: time to\n")
		fmt.Fprintf(fs.Output(), "first video, each outage, black time. Exits 0 when the session reached CONNECTED and video\n")
		fmt.Fprintf(fs.Output(), "arrived, 1 with the reason otherwise, including when video is not flowing at the end (no\n")
		fmt.Fprintf(fs.Output(), "packets in the last 3s), an outage never recovered (RECOVERY_STARTED or MEDIA_STALLED without\n")
		fmt.Fprintf(fs.Output(), "a later RECOVERED), or a RECOVERED was not followed by growing packet counters within 1s.\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nFaults (-fault, needs a server started with -dev):\n")
		for _, f := range faults {
			fmt.Fprintf(fs.Output(), "  %-21s %s\n", f.name, f.help)
		}
		fmt.Fprint(fs.Output(), jsonHelp)
	}
	if err := parseFlags(fs, args); err != nil {
		return c, err
	}
	problems := fillCommon(fs, &c.commonConfig, getenv)
	if !setFlags(fs)["dev-http"] && getenv(envDevHTTP) != "" {
		c.DevHTTP = getenv(envDevHTTP)
	}
	switch mode {
	case "connect":
		c.Mode = viewerclient.ModeConnect
	case "signal":
		c.Mode = viewerclient.ModeSignal
	default:
		problems = append(problems, fmt.Sprintf("-mode %q: want connect or signal", mode))
	}
	if c.ViewerID == "" {
		problems = append(problems, "-viewer-id is empty")
	}
	if c.Fault != "" {
		if _, ok := findFault(c.Fault); !ok {
			problems = append(problems, fmt.Sprintf("-fault %q: want one of %s", c.Fault, strings.Join(faultNames(), ", ")))
		}
		if !strings.HasPrefix(c.DevHTTP, "http://") && !strings.HasPrefix(c.DevHTTP, "https://") {
			problems = append(problems, fmt.Sprintf("-dev-http %q: want a URL such as http://localhost:8080", c.DevHTTP))
		}
	}
	if c.FaultDelay != 0 && c.Fault != "late-answer" {
		problems = append(problems, "-fault-delay goes with -fault late-answer")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"duration", c.Duration}, {"fault-delay", c.FaultDelay}, {"answer-timeout", c.AnswerTimeout},
		{"retry-delay", c.RetryDelay}, {"ice-restart-timeout", c.ICERestartTimeout}, {"network-change-after", c.NetworkChangeAfter},
	} {
		if d.v < 0 {
			problems = append(problems, fmt.Sprintf("-%s %v is negative", d.name, d.v))
		}
	}
	if c.MaxAttempts > 5 {
		problems = append(problems, fmt.Sprintf("-max-attempts %d: want 1..5", c.MaxAttempts))
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("%w: %s", errUsage, strings.Join(problems, "; "))
	}
	return c, nil
}

// jsonHelp documents -json's lines; the names are a contract with the
// scripts that read them.
const jsonHelp = `
JSON lines (-json): one object per line on stdout, each with "time" (the wall clock, RFC 3339
with nanoseconds) and "kind":
  {"kind":"media","pc":N,"packets":N,"bytes":N,"frames":N}
      every 100ms: the current peer connection's video counters, as the client reports them to the
      service: pc changes with every new peer connection (0: none) and its counters start at 0;
      bytes are RTP payload bytes; frames are complete frames (marker bit: viewerctl does not decode)
  {"kind":"event","sequence":N,"type":"RECOVERED","state":"CONNECTED","message":"...","client_id":"...",
   "step":"NEW_CLIENT_ID","outage_ms":N,"learned":false}
      every timeline event as it arrives; step and learned only with a recovery step
      (RECOVERY_STARTED, RECOVERED), outage_ms only with an outage (RECOVERED)
  {"kind":"network","description":"..."}
      the client saw the network change (or -network-change-after made it) and tells the service
  {"kind":"redial","reason":"ack timeout|network change|stream error"}
      the client abandons its connection to the service and dials a fresh one
  {"kind":"summary","first_video_ms":N,"outages":[{"step":"...","outage_ms":N}],"gaps_ms":[N],
   "black_ms":N,"false_recoveries":N,"packets":N,"ok":true,"error":""}
      last: time from the session's creation to the first video packet (-1: none); the outages
      the service reported (RECOVERED); the gaps of more than 500ms between video packets that
      viewerctl measured itself, and their sum (black_ms, counting a gap still open at the end);
      RECOVERED events not followed by growing packet counters within 1s; ok and the error as the
      exit status says
`

// parseSessions parses `viewerctl sessions` arguments.
func parseSessions(args []string, getenv func(string) string, stderr io.Writer) (sessionsConfig, error) {
	var c sessionsConfig
	fs := flag.NewFlagSet("viewerctl sessions", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addCommon(fs, &c.commonConfig)
	fs.BoolVar(&c.All, "all", false, "also list ended sessions (FAILED, CLOSED)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: viewerctl sessions -api-key KEY -channel NAME [flags]\n\n")
		fmt.Fprintf(fs.Output(), "Lists the channel's sessions, newest first: who is watching.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return c, err
	}
	if problems := fillCommon(fs, &c.commonConfig, getenv); len(problems) > 0 {
		return c, fmt.Errorf("%w: %s", errUsage, strings.Join(problems, "; "))
	}
	return c, nil
}

// parseFlags parses args and refuses positional arguments. The flag
// package prints nothing but -h's usage: main prints the error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return err
	case err != nil:
		return fmt.Errorf("%w: %w", errUsage, explainFlagError(fs, err))
	case fs.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q: %s takes flags only", errUsage, fs.Arg(0), fs.Name())
	}
	return nil
}

// badValue matches the flag package's error for a value a flag refused.
var badValue = regexp.MustCompile(`^invalid value "(.*)" for flag -([^:]+): `)

// explainFlagError replaces the flag package's bare "parse error" for a
// duration flag with what a duration looks like.
func explainFlagError(fs *flag.FlagSet, err error) error {
	m := badValue.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	f := fs.Lookup(m[2])
	if f == nil {
		return err
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return err
	}
	if _, ok := g.Get().(time.Duration); !ok {
		return err
	}
	example := "10s"
	if _, nerr := strconv.ParseFloat(m[1], 64); nerr == nil {
		example = m[1] + "s"
	}
	return fmt.Errorf("-%s %q: want a duration such as %s (a number and a unit: ms, s, m, h)", m[2], m[1], example)
}

// notClientID is what a KVS clientId may not contain.
var notClientID = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// defaultViewerID is "viewerctl-<user>", with the user name reduced to
// clientId characters.
func defaultViewerID(getenv func(string) string) string {
	name := getenv("USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	name = strings.Trim(notClientID.ReplaceAllString(name, "-"), "-")
	if name == "" {
		return "viewerctl"
	}
	return "viewerctl-" + name
}
