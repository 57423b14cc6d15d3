package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/acme/viewersession/kvsemu/camera"
	"github.com/acme/viewersession/service"
)

// Config is the whole server configuration. Every field has a flag and a
// VS_* environment variable (flag -grpc-addr <-> VS_GRPC_ADDR); flags win
// over the environment, the environment over the defaults of DefaultConfig.
type Config struct {
	// GRPCAddr is the gRPC listen address. Default ":50051".
	GRPCAddr string
	// HTTPAddr serves /metrics, /healthz and /readyz. Default ":8080".
	HTTPAddr string
	// RedisURL is the shared state (redis://, rediss://). Empty means
	// in-memory state: a single replica only. Default "".
	RedisURL string
	// RedisMode says how to read RedisURL: standalone (redis://host:port/db),
	// sentinel (redis://sentinel:26379/db?master_name=NAME&addr=sentinel2:26379)
	// or cluster (redis://node:6379?addr=node2:6379&addr=node3:6379).
	// Default "standalone".
	RedisMode string
	// RedisWriteVersion is the wire version of the records, timeline events
	// and forwarded messages this replica writes to Redis: 2, or 1 while
	// replicas of a release before version 2 share the Redis (a rolling
	// update's first step; both are read either way). Default 2.
	RedisWriteVersion int
	// MaxEnded and MaxEndedPerChannel bound the ended sessions kept for
	// their retention (GetSession, ListSessions, WatchSession's replay), in
	// all and per channel: past a bound the oldest ended goes first; 0
	// leaves a bound off. Defaults 100,000 and 1,000.
	MaxEnded, MaxEndedPerChannel int
	// ReplicaID names this replica as a session owner; unique per process.
	// Default "" = <hostname>-<pid>.
	ReplicaID string
	// TokenSecretFile holds the key session tokens are derived with; all
	// replicas must share it (a Kubernetes Secret) so that an idempotent
	// CreateSession repeat on another replica returns the same token.
	// Default "" = random per process.
	TokenSecretFile string
	// Dev runs everything embedded: in-memory state and a local KVS emulator
	// with a simulated camera on channel demo-camera. Default false.
	Dev bool
	// DevCameraMode is how -dev's simulated camera treats a new offer from a
	// known clientId: c-sample, js-sample or restart-capable (see kvsemu).
	// Default "c-sample".
	DevCameraMode string
	// DevCameraIP is the address -dev's camera gathers its ICE candidates
	// on: an address of this host (a network test gives the camera a host
	// of its own). Default "127.0.0.1".
	DevCameraIP string
	// DevTURNAddr is where -dev's TURN server listens and relays ("ip:port",
	// port 0 = free ports). Default "127.0.0.1:0".
	DevTURNAddr string
	// DevKVSAddr is where -dev's KVS emulator (control plane and signaling)
	// listens. Default "127.0.0.1:0".
	DevKVSAddr string
	// DrainTimeout bounds the graceful shutdown after SIGTERM/SIGINT: open
	// streams get this long to finish before they are cut. Default 20s.
	DrainTimeout time.Duration
	// LogLevel is debug, info, warn or error. Default "info".
	LogLevel string
	// LogFormat is json or text. Default "json".
	LogFormat string
	// PrintVersion prints the version and exits (-version; its environment
	// variable is ignored). Default false.
	PrintVersion bool

	// AWSRegion is the region of channels given by name without one.
	// Default "us-west-2".
	AWSRegion string
	// KVSEndpoint overrides the KVS control-plane endpoint (the emulator's
	// URL). Empty means AWS. Default "".
	KVSEndpoint string
	// KVSCAFile is a PEM file of extra CAs to trust for KVS (the emulator's
	// CA, written by kvs-emulator -ca-out). Default "".
	KVSCAFile string

	// APIKeysFile is a file of backend API keys, one per line (# comments).
	// Default "".
	APIKeysFile string
	// APIKeys are backend API keys, comma-separated. Prefer VS_API_KEYS or
	// the file: flags are visible to other users of the machine. With no key
	// at all, backend RPCs are refused (-dev generates and prints one).
	// Default "".
	APIKeys string

	// TLSCert and TLSKey are PEM files of the gRPC port's certificate and
	// key; both or neither. The pair is reloaded when either file changes,
	// without dropping open streams. Default "" (plaintext).
	TLSCert, TLSKey string
	// TLSClientCA is a PEM file of CAs whose client certificates the gRPC
	// port requires (mTLS). Needs TLSCert. Default "".
	TLSClientCA string
	// HTTPTLS serves the HTTP port (/metrics, /healthz, /readyz) with the
	// same certificate (no client certificate asked). Needs TLSCert.
	// Default false.
	HTTPTLS bool
	// HTTPIdleTimeout closes HTTP keep-alive connections idle this long.
	// Default 60s.
	HTTPIdleTimeout time.Duration
	// GCPercent is the garbage collector's target (what GOGC sets): the
	// heap may grow this many percent over what was live after the last
	// collection before the next one. Lower trades CPU and latency for
	// memory: at 30 a joined session takes about 62 KiB of RSS at 10,000
	// instead of 70, a whole session about 15% (on Redis) to 35% (in
	// memory) more server CPU, and CreateSession's p99 with 10,000 streams
	// open about 2x the idle replica's instead of about 1x
	// (docs/BENCHMARKS.md (c)). The GOGC variable, when set, wins over
	// this default but not over the flag or VS_GC_PERCENT. Default 100,
	// Go's.
	GCPercent int
	// gcPercentSet: GCPercent was given (flag or VS_GC_PERCENT).
	gcPercentSet bool
	// Pprof serves Go's profiles under /debug/pprof/ on the HTTP port. They
	// show no secrets but cost CPU while taken: expose the port to operators
	// only. Default false.
	Pprof bool
	// WebAddr serves browsers: Connect and gRPC-Web on HTTP/1.1, h2c and
	// (with WebTLS) HTTP/2 over TLS. Default "" (off); -dev alone serves
	// 127.0.0.1:8081 with the demo page.
	WebAddr string
	// WebOrigins are the origins allowed to call the web port from another
	// origin (CORS), comma-separated, or "*". Default "" (same origin only).
	WebOrigins string
	// WebTLS serves the web port with -tls-cert. Default false.
	WebTLS bool
	// OTelEndpoint is the OTLP/gRPC collector spans go to
	// (http://host:4317 without TLS, https:// with it): a span per RPC and
	// per session step. Default "" (no tracing).
	OTelEndpoint string
	// MaxConcurrentStreams bounds the gRPC streams (and in-flight unary
	// calls) of one client connection. Default 100.
	MaxConcurrentStreams uint
	// WebhookURLs receive the sessions' lifecycle events as signed POSTs
	// (see docs/WEBHOOKS.md), comma-separated: the flag repeats (each adds),
	// and VS_WEBHOOK_URL takes a comma-separated list (the flags add to
	// it). Default "" (off).
	WebhookURLs string
	// WebhookSecret is the webhooks' HMAC-SHA256 key, at least 16 bytes;
	// required with WebhookURLs. Prefer VS_WEBHOOK_SECRET: flags are
	// visible to other users of the machine. Never logged. Default "".
	WebhookSecret string
	// WebhookBackoff is the wait after a first failed webhook attempt; it
	// doubles after each failure, up to 5 minutes. Default 1s.
	WebhookBackoff time.Duration
	// WebhookMaxAttempts is the attempts a replica makes at one webhook
	// delivery before it gives up. Default 10.
	WebhookMaxAttempts int
	// WebhookClaimIdle is how long a webhook delivery taken by a replica
	// that stopped (SIGKILL) waits before another replica finishes it
	// (Redis only). Default 30s.
	WebhookClaimIdle time.Duration
	// Limits bound what one caller can make the service do; defaults
	// service.DefaultLimits.
	Limits service.Limits

	// Session holds the server-wide defaults of per-session options.
	Session SessionDefaults

	// KeepaliveMinTime is the minimum interval between client keepalive pings
	// the server tolerates (clients pinging faster are disconnected with
	// ENHANCE_YOUR_CALM). Default 10s.
	KeepaliveMinTime time.Duration
	// KeepaliveTime is how often the server pings an idle connection.
	// Default 30s.
	KeepaliveTime time.Duration
	// KeepaliveTimeout is how long the server waits for a ping ack before it
	// closes the connection. Default 10s.
	KeepaliveTimeout time.Duration
}

// SessionDefaults are the defaults of SessionOptions and the session limits.
type SessionDefaults struct {
	// AnswerTimeout: wait for the camera's SDP answer. Default 30s.
	AnswerTimeout time.Duration
	// RetryDelay: wait between a timed-out attempt and the retry. Default 6s.
	RetryDelay time.Duration
	// MaxAttempts: signaling attempts per offer. Default 2.
	MaxAttempts int
	// ResumeGrace: how long a session outlives its app's stream. Default 30s.
	ResumeGrace time.Duration
	// ICERestartTimeout: the recovery ladder's ICE-restart step, from the
	// renegotiate to video flowing again.
	// Default 5s.
	ICERestartTimeout time.Duration
	// DisconnectedGrace: how long ICE may stay disconnected before recovery.
	// Default 5s.
	DisconnectedGrace time.Duration
	// NewPeerConnectionTimeout: the ladder's new-peer-connection step (and
	// the wait for video after a new clientId's answer). Default 2s.
	NewPeerConnectionTimeout time.Duration
	// MediaStallTimeout: how long video may stand still on a connected peer
	// connection before it is an outage. Default 4s.
	MediaStallTimeout time.Duration
	// RecoveryHintTTL: how long the step that worked for a channel's camera
	// is remembered (shared by replicas through the store). Default 24h.
	RecoveryHintTTL time.Duration
	// MaxLifetime of a session. Default 12h.
	MaxLifetime time.Duration
	// MaxPerChannel is the live-session limit per channel (KVS allows 10
	// viewers). Default 10.
	MaxPerChannel int
	// ClientIDCooldown is the minimum time before a released clientId is
	// reused on its channel (the channel's MessageTtlSeconds if longer).
	// Default 60s.
	ClientIDCooldown time.Duration
}

// devWebAddr is the web port -dev serves unless told otherwise.
const devWebAddr = "127.0.0.1:8081"

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		GRPCAddr:             ":50051",
		RedisMode:            "standalone",
		RedisWriteVersion:    2,
		MaxEnded:             100_000,
		MaxEndedPerChannel:   1_000,
		HTTPAddr:             ":8080",
		DrainTimeout:         20 * time.Second,
		DevCameraMode:        string(camera.CSample),
		DevCameraIP:          "127.0.0.1",
		DevTURNAddr:          "127.0.0.1:0",
		DevKVSAddr:           "127.0.0.1:0",
		LogLevel:             "info",
		LogFormat:            "json",
		AWSRegion:            "us-west-2",
		KeepaliveMinTime:     10 * time.Second,
		KeepaliveTime:        30 * time.Second,
		KeepaliveTimeout:     10 * time.Second,
		HTTPIdleTimeout:      60 * time.Second,
		GCPercent:            100,
		MaxConcurrentStreams: 100,
		WebhookBackoff:       time.Second,
		WebhookMaxAttempts:   10,
		WebhookClaimIdle:     30 * time.Second,
		Limits:               service.DefaultLimits(),
		Session: SessionDefaults{
			AnswerTimeout:            30 * time.Second,
			RetryDelay:               6 * time.Second,
			MaxAttempts:              2,
			ResumeGrace:              30 * time.Second,
			ICERestartTimeout:        1500 * time.Millisecond,
			DisconnectedGrace:        5 * time.Second,
			NewPeerConnectionTimeout: 2 * time.Second,
			MediaStallTimeout:        4 * time.Second,
			RecoveryHintTTL:          24 * time.Hour,
			MaxLifetime:              12 * time.Hour,
			MaxPerChannel:            10,
			ClientIDCooldown:         60 * time.Second,
		},
	}
}

// flagSet binds every Config field to a flag; the usage text is the table
// in README.md.
func (c *Config) flagSet(out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "gRPC listen address")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "HTTP listen address for /metrics, /healthz, /readyz")
	fs.StringVar(&c.RedisURL, "redis-url", c.RedisURL, "Redis URL for shared state; empty = in-memory, single replica")
	fs.StringVar(&c.RedisMode, "redis-mode", c.RedisMode, "standalone, sentinel or cluster: how to read -redis-url")
	fs.IntVar(&c.RedisWriteVersion, "redis-write-version", c.RedisWriteVersion, "wire version of what is written to Redis: 2, or 1 while older replicas share it")
	fs.IntVar(&c.MaxEnded, "max-ended-sessions", c.MaxEnded, "ended sessions kept for their retention, in all (the oldest ended goes first; 0: no bound)")
	fs.IntVar(&c.MaxEndedPerChannel, "max-ended-per-channel", c.MaxEndedPerChannel, "ended sessions kept for their retention, per channel (0: no bound)")
	fs.StringVar(&c.ReplicaID, "replica-id", c.ReplicaID, "this replica's name as a session owner; empty = <hostname>-<pid>")
	fs.StringVar(&c.TokenSecretFile, "token-secret-file", c.TokenSecretFile, "file with the key session tokens are derived with (share it across replicas)")
	fs.BoolVar(&c.Dev, "dev", c.Dev, "run everything embedded: in-memory state, local KVS emulator, simulated camera")
	fs.StringVar(&c.DevCameraMode, "dev-camera-mode", c.DevCameraMode, "-dev camera: c-sample, js-sample or restart-capable")
	fs.StringVar(&c.DevCameraIP, "dev-camera-ip", c.DevCameraIP, "-dev camera: the IP it gathers ICE candidates on")
	fs.StringVar(&c.DevTURNAddr, "dev-turn-addr", c.DevTURNAddr, "-dev TURN server: listen and relay address ip:port")
	fs.StringVar(&c.DevKVSAddr, "dev-kvs-addr", c.DevKVSAddr, "-dev KVS emulator: listen address ip:port")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "graceful shutdown bound after SIGTERM")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "json or text")
	fs.BoolVar(&c.PrintVersion, "version", c.PrintVersion, "print the version and exit")
	fs.StringVar(&c.APIKeysFile, "api-keys-file", c.APIKeysFile, "file of backend API keys, one per line")
	fs.StringVar(&c.APIKeys, "api-keys", c.APIKeys, "backend API keys, comma-separated (prefer VS_API_KEYS)")
	fs.StringVar(&c.AWSRegion, "aws-region", c.AWSRegion, "region of channels given by name without one")
	fs.StringVar(&c.KVSEndpoint, "kvs-endpoint", c.KVSEndpoint, "KVS control-plane endpoint override (emulator URL)")
	fs.StringVar(&c.KVSCAFile, "kvs-ca-file", c.KVSCAFile, "PEM file of extra CAs to trust for KVS")
	fs.DurationVar(&c.Session.AnswerTimeout, "answer-timeout", c.Session.AnswerTimeout, "default wait for the camera's SDP answer")
	fs.DurationVar(&c.Session.RetryDelay, "retry-delay", c.Session.RetryDelay, "default wait before retrying with a fresh clientId")
	fs.IntVar(&c.Session.MaxAttempts, "max-attempts", c.Session.MaxAttempts, "default signaling attempts per offer")
	fs.DurationVar(&c.Session.ResumeGrace, "resume-grace", c.Session.ResumeGrace, "default time a session outlives its app's stream")
	fs.DurationVar(&c.Session.ICERestartTimeout, "ice-restart-timeout", c.Session.ICERestartTimeout, "default time the recovery ladder's ICE-restart step has to bring video back")
	fs.DurationVar(&c.Session.DisconnectedGrace, "disconnected-grace", c.Session.DisconnectedGrace, "default time ICE may stay disconnected")
	fs.DurationVar(&c.Session.NewPeerConnectionTimeout, "new-peer-connection-timeout", c.Session.NewPeerConnectionTimeout, "default time the ladder's new-peer-connection step has to bring video back")
	fs.DurationVar(&c.Session.MediaStallTimeout, "media-stall-timeout", c.Session.MediaStallTimeout, "default time video may stand still while connected before it is an outage")
	fs.DurationVar(&c.Session.RecoveryHintTTL, "recovery-hint-ttl", c.Session.RecoveryHintTTL, "how long the recovery step that worked for a channel is remembered")
	fs.DurationVar(&c.Session.MaxLifetime, "max-lifetime", c.Session.MaxLifetime, "default maximum session lifetime")
	fs.IntVar(&c.Session.MaxPerChannel, "max-sessions-per-channel", c.Session.MaxPerChannel, "live sessions allowed per channel")
	fs.DurationVar(&c.Session.ClientIDCooldown, "client-id-cooldown", c.Session.ClientIDCooldown, "minimum clientId reuse cooldown")
	fs.DurationVar(&c.KeepaliveMinTime, "keepalive-min-time", c.KeepaliveMinTime, "minimum client keepalive ping interval tolerated")
	fs.DurationVar(&c.KeepaliveTime, "keepalive-time", c.KeepaliveTime, "server ping interval on idle connections")
	fs.DurationVar(&c.KeepaliveTimeout, "keepalive-timeout", c.KeepaliveTimeout, "wait for a keepalive ack")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate of the gRPC port (reloaded when it changes); empty = plaintext")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key of -tls-cert")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", c.TLSClientCA, "PEM CAs of the client certificates the gRPC port requires (mTLS)")
	fs.BoolVar(&c.HTTPTLS, "http-tls", c.HTTPTLS, "serve the HTTP port with -tls-cert too")
	fs.DurationVar(&c.HTTPIdleTimeout, "http-idle-timeout", c.HTTPIdleTimeout, "close HTTP keep-alive connections idle this long")
	fs.IntVar(&c.GCPercent, "gc-percent", c.GCPercent, "garbage collector target (GOGC): heap growth in percent over the live heap before a collection")
	fs.BoolVar(&c.Pprof, "pprof", c.Pprof, "serve Go's profiles under /debug/pprof/ on the HTTP port (operators only)")
	fs.StringVar(&c.WebAddr, "web-addr", c.WebAddr, "browsers' listen address (Connect, gRPC-Web); empty = off")
	fs.StringVar(&c.WebOrigins, "web-origins", c.WebOrigins, "origins allowed to call the web port cross-origin (CORS), comma-separated, or *")
	fs.BoolVar(&c.WebTLS, "web-tls", c.WebTLS, "serve the web port with -tls-cert (HTTP/2 over TLS)")
	fs.StringVar(&c.OTelEndpoint, "otel-endpoint", c.OTelEndpoint, "OTLP/gRPC collector URL for traces (http://host:4317); empty = off")
	fs.UintVar(&c.MaxConcurrentStreams, "max-concurrent-streams", c.MaxConcurrentStreams, "gRPC streams allowed per client connection")
	fs.Var(listValue{&c.WebhookURLs}, "webhook-url", "URL that receives signed session lifecycle webhooks; repeat for several")
	fs.StringVar(&c.WebhookSecret, "webhook-secret", c.WebhookSecret, "webhook signing key, at least 16 bytes (prefer VS_WEBHOOK_SECRET)")
	fs.DurationVar(&c.WebhookBackoff, "webhook-backoff", c.WebhookBackoff, "wait after a first failed webhook attempt (doubles up to 5m)")
	fs.IntVar(&c.WebhookMaxAttempts, "webhook-max-attempts", c.WebhookMaxAttempts, "attempts at one webhook delivery before it is given up")
	fs.DurationVar(&c.WebhookClaimIdle, "webhook-claim-idle", c.WebhookClaimIdle, "how long a stopped replica's webhook deliveries wait before another replica takes them")
	fs.IntVar(&c.Limits.StreamsPerSession, "max-streams-per-session", c.Limits.StreamsPerSession, "Connect and WatchSession streams open on one session (per replica)")
	fs.IntVar(&c.Limits.StreamsPerAPIKey, "max-streams-per-api-key", c.Limits.StreamsPerAPIKey, "backend WatchSession streams of one API key (per replica)")
	fs.Float64Var(&c.Limits.CreatesPerSecond, "creates-per-second", c.Limits.CreatesPerSecond, "CreateSession calls per second per API key (shared through Redis)")
	fs.IntVar(&c.Limits.CreateBurst, "create-burst", c.Limits.CreateBurst, "CreateSession burst per API key")
	fs.Float64Var(&c.Limits.AppMessagesPerSecond, "app-messages-per-second", c.Limits.AppMessagesPerSecond, "app messages per second per session")
	fs.IntVar(&c.Limits.AppMessageBurst, "app-message-burst", c.Limits.AppMessageBurst, "app message burst per session")
	fs.Float64Var(&c.Limits.ProbesPerSecond, "probes-per-second", c.Limits.ProbesPerSecond, "ProbeChannel calls per second per channel (shared through Redis)")
	fs.IntVar(&c.Limits.ProbeBurst, "probe-burst", c.Limits.ProbeBurst, "ProbeChannel burst per channel")
	return fs
}

// listValue is a repeatable flag kept as a comma-separated list: each
// Set adds its comma-separated values.
type listValue struct{ list *string }

func (v listValue) String() string {
	if v.list == nil {
		return ""
	}
	return *v.list
}

func (v listValue) Set(s string) error {
	items := splitList(*v.list)
	items = append(items, splitList(s)...)
	*v.list = strings.Join(items, ",")
	return nil
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// envName is the environment variable of a flag: -grpc-addr -> VS_GRPC_ADDR.
func envName(flagName string) string {
	return "VS_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// recordingValue wraps a flag.Value so that a bad value is recorded and
// parsing goes on: every problem is reported at once.
type recordingValue struct {
	flag.Value
	name string
	errs *[]error
}

func (v *recordingValue) Set(s string) error {
	if err := v.Value.Set(s); err != nil {
		*v.errs = append(*v.errs, fmt.Errorf("-%s %q: %v", v.name, s, unwrapFlagErr(err)))
	}
	return nil
}

// String is nil-safe: the flag package calls it on a zero value it makes
// itself to tell whether a default is worth printing.
func (v *recordingValue) String() string {
	if v == nil || v.Value == nil {
		return ""
	}
	return v.Value.String()
}

// IsBoolFlag keeps `-dev` (without a value) working through the wrapper.
func (v *recordingValue) IsBoolFlag() bool {
	if v == nil || v.Value == nil {
		return false
	}
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func unwrapFlagErr(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return ne.Err
	}
	return err
}

// LoadConfig builds the configuration from defaults, the environment and
// the command line, then validates it. The error names every problem.
func LoadConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	cfg := DefaultConfig()
	fs := cfg.flagSet(out)
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		f.Value = &recordingValue{Value: f.Value, name: f.Name, errs: &errs}
	})
	// -h prints the flags of an unwrapped set, so each shows its type
	// ("duration", "int") and its default.
	fs.Usage = func() {
		fmt.Fprintln(out, "Usage of server:")
		plain := DefaultConfig()
		plain.flagSet(out).PrintDefaults()
	}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "version" {
			return // a command, not a setting
		}
		if v := getenv(envName(f.Name)); v != "" {
			before := len(errs)
			_ = f.Value.Set(v)
			if len(errs) > before {
				errs[len(errs)-1] = fmt.Errorf("%s: %w", envName(f.Name), errs[len(errs)-1])
			}
		}
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		errs = append(errs, err)
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %q", fs.Args()))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfg.gcPercentSet = set["gc-percent"] || getenv(envName("gc-percent")) != ""
	if cfg.Dev {
		// -dev serves an unauthenticated emulator proxy: loopback only,
		// unless an address was asked for explicitly.
		def := DefaultConfig()
		if cfg.GRPCAddr == def.GRPCAddr && !set["grpc-addr"] && getenv(envName("grpc-addr")) == "" {
			cfg.GRPCAddr = "127.0.0.1" + def.GRPCAddr
		}
		if cfg.HTTPAddr == def.HTTPAddr && !set["http-addr"] && getenv(envName("http-addr")) == "" {
			cfg.HTTPAddr = "127.0.0.1" + def.HTTPAddr
		}
		if cfg.WebAddr == "" && !set["web-addr"] && getenv(envName("web-addr")) == "" {
			cfg.WebAddr = devWebAddr
		}
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return cfg, fmt.Errorf("invalid configuration:\n%w", errors.Join(errs...))
	}
	return cfg, nil
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	addrs := []struct{ name, addr string }{{"grpc-addr", c.GRPCAddr}, {"http-addr", c.HTTPAddr}}
	if c.WebAddr != "" {
		addrs = append(addrs, struct{ name, addr string }{"web-addr", c.WebAddr})
	}
	for _, a := range addrs {
		if err := validateAddr(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("-%s %q: %v", a.name, a.addr, err))
		}
	}
	if c.RedisURL != "" {
		u, err := url.Parse(c.RedisURL)
		check(err == nil && (u.Scheme == "redis" || u.Scheme == "rediss") && u.Host != "",
			"-redis-url %q: want redis://host:port/db or rediss://...", redactURL(c.RedisURL))
	}
	check(c.RedisMode == "standalone" || c.RedisMode == "sentinel" || c.RedisMode == "cluster",
		"-redis-mode %q: want standalone, sentinel or cluster", c.RedisMode)
	check(c.RedisWriteVersion == 1 || c.RedisWriteVersion == 2,
		"-redis-write-version %d: want 1 or 2", c.RedisWriteVersion)
	check(c.MaxEnded >= 0, "-max-ended-sessions %d: want 0 (no bound) or more", c.MaxEnded)
	check(c.GCPercent >= 10 && c.GCPercent <= 1000, "-gc-percent %d: must be 10..1000", c.GCPercent)
	check(c.MaxEndedPerChannel >= 0, "-max-ended-per-channel %d: want 0 (no bound) or more", c.MaxEndedPerChannel)
	positive := []struct {
		name string
		d    time.Duration
	}{
		{"drain-timeout", c.DrainTimeout},
		{"answer-timeout", c.Session.AnswerTimeout},
		{"resume-grace", c.Session.ResumeGrace},
		{"ice-restart-timeout", c.Session.ICERestartTimeout},
		{"disconnected-grace", c.Session.DisconnectedGrace},
		{"new-peer-connection-timeout", c.Session.NewPeerConnectionTimeout},
		{"media-stall-timeout", c.Session.MediaStallTimeout},
		{"recovery-hint-ttl", c.Session.RecoveryHintTTL},
		{"max-lifetime", c.Session.MaxLifetime},
		{"client-id-cooldown", c.Session.ClientIDCooldown},
		{"keepalive-min-time", c.KeepaliveMinTime},
		{"keepalive-time", c.KeepaliveTime},
		{"keepalive-timeout", c.KeepaliveTimeout},
		{"http-idle-timeout", c.HTTPIdleTimeout},
		{"webhook-backoff", c.WebhookBackoff},
		{"webhook-claim-idle", c.WebhookClaimIdle},
	}
	for _, p := range positive {
		check(p.d > 0, "-%s %v: must be positive", p.name, p.d)
	}
	check(c.Session.RetryDelay >= 0, "-retry-delay %v: must not be negative", c.Session.RetryDelay)
	check(c.Session.MaxAttempts >= 1 && c.Session.MaxAttempts <= 5, "-max-attempts %d: must be 1..5", c.Session.MaxAttempts)
	check(c.Session.MaxPerChannel >= 1, "-max-sessions-per-channel %d: must be at least 1", c.Session.MaxPerChannel)
	for _, l := range []struct {
		name string
		v    float64
	}{
		{"max-streams-per-session", float64(c.Limits.StreamsPerSession)},
		{"max-streams-per-api-key", float64(c.Limits.StreamsPerAPIKey)},
		{"creates-per-second", c.Limits.CreatesPerSecond},
		{"create-burst", float64(c.Limits.CreateBurst)},
		{"app-messages-per-second", c.Limits.AppMessagesPerSecond},
		{"app-message-burst", float64(c.Limits.AppMessageBurst)},
		{"probes-per-second", c.Limits.ProbesPerSecond},
		{"probe-burst", float64(c.Limits.ProbeBurst)},
	} {
		check(l.v > 0, "-%s %v: must be positive", l.name, l.v)
	}
	check((c.TLSCert == "") == (c.TLSKey == ""), "-tls-cert and -tls-key: give both or neither")
	check(c.TLSClientCA == "" || c.TLSCert != "", "-tls-client-ca needs -tls-cert and -tls-key")
	check(!c.HTTPTLS || c.TLSCert != "", "-http-tls needs -tls-cert and -tls-key")
	check(!c.WebTLS || c.TLSCert != "", "-web-tls needs -tls-cert and -tls-key")
	for _, o := range parseOrigins(c.WebOrigins) {
		u, err := url.Parse(o)
		check(o == "*" || (err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Path == ""),
			"-web-origins %q: want scheme://host[:port] (or *)", o)
	}
	if c.OTelEndpoint != "" {
		u, err := url.Parse(c.OTelEndpoint)
		check(err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "",
			"-otel-endpoint %q: want http://host:port or https://host:port", c.OTelEndpoint)
	}
	for _, w := range splitList(c.WebhookURLs) {
		u, err := url.Parse(w)
		check(err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "",
			"-webhook-url %q: want an http:// or https:// URL", redactURL(w))
	}
	if c.WebhookURLs != "" {
		check(len(c.WebhookSecret) >= 16, "-webhook-url needs -webhook-secret (VS_WEBHOOK_SECRET) of at least 16 bytes")
	}
	check(c.WebhookMaxAttempts >= 1, "-webhook-max-attempts %d: must be at least 1", c.WebhookMaxAttempts)
	check(c.MaxConcurrentStreams >= 1, "-max-concurrent-streams %d: must be at least 1", c.MaxConcurrentStreams)
	if _, err := camera.ParseMode(c.DevCameraMode); err != nil {
		errs = append(errs, fmt.Errorf("-dev-camera-mode %q: want c-sample, js-sample or restart-capable", c.DevCameraMode))
	}
	if _, err := netip.ParseAddr(c.DevCameraIP); err != nil {
		errs = append(errs, fmt.Errorf("-dev-camera-ip %q: want an IP address", c.DevCameraIP))
	}
	for _, a := range []struct{ name, addr string }{{"dev-turn-addr", c.DevTURNAddr}, {"dev-kvs-addr", c.DevKVSAddr}} {
		if ap, err := netip.ParseAddrPort(a.addr); err != nil || !ap.Addr().Is4() {
			errs = append(errs, fmt.Errorf("-%s %q: want an IPv4 ip:port", a.name, a.addr))
		}
	}
	_, levelErr := parseLevel(c.LogLevel)
	check(levelErr == nil, "-log-level %q: want debug, info, warn or error", c.LogLevel)
	check(c.LogFormat == "json" || c.LogFormat == "text", "-log-format %q: want json or text", c.LogFormat)
	check(c.AWSRegion != "", "-aws-region: must not be empty")
	if c.KVSEndpoint != "" {
		u, err := url.Parse(c.KVSEndpoint)
		check(err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "",
			"-kvs-endpoint %q: want an https:// URL", c.KVSEndpoint)
	}
	return errors.Join(errs...)
}

func validateAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port or :port")
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("bad host %q", host)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// redactURL drops the password of a Redis URL so it can be printed.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}
