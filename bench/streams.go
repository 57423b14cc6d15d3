package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/acme/viewersession/internal/redisinfo"
	"github.com/acme/viewersession/kvsemu"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// StreamsConfig configures Streams: the real server binary, with its
// default settings, on Redis, holding many open app streams.
type StreamsConfig struct {
	// ServerBin is the server binary; empty: go build ./cmd/server of the
	// module this runs in, with default settings.
	ServerBin string
	// RedisURL is the Redis the server uses (the whole database is the
	// server's: INFO clients counts every client). Required.
	RedisURL string
	// Streams is the number of app streams opened, each on a session of
	// its own. Default 1000.
	Streams int
	// Kind is "connect" (Connect, joined) or "watch" (WatchSession with the
	// session token, which attaches like a Connect join). Default connect.
	Kind string
	// PerChannel is the sessions per channel (KVS allows 10 viewers).
	// Default 10.
	PerChannel int
	// Marks are the stream counts at which the Redis clients are counted
	// (0 and Streams always are). Default 1000.
	Marks []int
	// Probes is the CreateSession + GetSession pairs timed idle and at
	// Streams open, ProbeConcurrency at a time. Default 10,000 and 4: a
	// probe then lasts several seconds, long enough to hold the loaded
	// server's collections (a few hundred milliseconds each, every few
	// seconds under the probe) in their share. A probe of 1,000 (half a
	// second) held one or none, by chance, so its p99 was that chance's.
	Probes, ProbeConcurrency int
	// OpenConcurrency bounds the streams being opened at once. Default 32.
	OpenConcurrency int
	// Hold keeps every stream open this long after the last probe (to
	// profile the server, look at Redis, ...). Default 0.
	Hold time.Duration
	// Log, if set, gets progress lines.
	Log io.Writer
}

func (c StreamsConfig) withDefaults() StreamsConfig {
	if c.Streams <= 0 {
		c.Streams = 1000
	}
	if c.Kind == "" {
		c.Kind = "connect"
	}
	if c.PerChannel <= 0 {
		c.PerChannel = 10
	}
	if c.Marks == nil {
		c.Marks = []int{1000}
	}
	if c.Probes <= 0 {
		c.Probes = 10000
	}
	if c.ProbeConcurrency <= 0 {
		c.ProbeConcurrency = 4
	}
	if c.OpenConcurrency <= 0 {
		c.OpenConcurrency = 32
	}
	return c
}

// StreamsMark is the state at one stream count.
type StreamsMark struct {
	Streams int
	// RedisClients is INFO clients' connected_clients (the server's, plus
	// the one connection this figure counts with).
	RedisClients int
	// ServerFDs is the server's open file descriptors.
	ServerFDs int
	LoadAvg   string
}

// StreamsProbe is one timed run of CreateSession + GetSession pairs.
type StreamsProbe struct {
	Streams     int
	Create, Get Dist
	Errors      int
	FirstErrors []string
	LoadAvg     string
	// Collisions is the growth of the server's
	// vss_client_id_collisions_total over the probe: creates whose
	// viewer's first clientId was taken. The probes' viewers are their
	// own, so it is 0 when the phases compare like with like.
	Collisions float64
}

// StreamsResult is what Streams measured.
type StreamsResult struct {
	Config     StreamsConfig
	Marks      []StreamsMark
	Idle, Busy StreamsProbe
	// OpenErrors are streams that failed to open; StreamErrors streams
	// that ended while they should have stayed open.
	OpenErrors, StreamErrors int
	FirstErrors              []string
	// StoreErrors is the growth of the server's vss_redis_errors_total
	// and vss_redis_pool_timeouts_total over the run.
	StoreErrors, PoolTimeouts float64
	// Opened is how long opening the streams took, Settled until every
	// session was AWAITING_OFFER.
	Opened, Settled time.Duration
	// ServerRSS is the server's resident memory with every stream open.
	ServerRSS int64
}

// Streams starts the real server binary on Redis with default settings
// (the default go-redis pool, the cluster-enabled manager) and the KVS
// emulator in this process, times CreateSession and GetSession on the idle
// replica, opens cfg.Streams app streams (each on its own session, joined),
// counts Redis's clients along the way, and times the calls again with
// every stream open. Sessions carry no video: joined streams are what
// costs.
func Streams(ctx context.Context, cfg StreamsConfig) (res StreamsResult, err error) {
	cfg = cfg.withDefaults()
	res.Config = cfg
	logf := logTo(cfg.Log)
	if cfg.Kind != "connect" && cfg.Kind != "watch" {
		return res, fmt.Errorf("kind %q: want connect or watch", cfg.Kind)
	}
	if cfg.RedisURL == "" {
		return res, errors.New("no Redis URL")
	}
	raiseFileLimit()
	dir, bin, err := serverWorkdir(ctx, "vsload-streams-", cfg.ServerBin)
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)

	ecfg := kvsemu.DefaultConfig()
	ecfg.Addr = "127.0.0.1:0"
	emu, err := kvsemu.Start(ctx, ecfg)
	if err != nil {
		return res, err
	}
	defer emu.Close()
	probeChannels := (cfg.Probes + 9) / 10
	arns := make([]string, (cfg.Streams+cfg.PerChannel-1)/cfg.PerChannel+probeChannels)
	for i := range arns {
		if arns[i], err = emu.CreateChannel(fmt.Sprintf("streams-%d", i), 60*time.Second); err != nil {
			return res, err
		}
	}
	streamARNs, probeARNs := arns[:len(arns)-probeChannels], arns[len(arns)-probeChannels:]
	caFile, err := writeCA(dir, emu)
	if err != nil {
		return res, err
	}

	srv, err := startServer(ctx, bin, dir, emu, caFile, "-redis-url", cfg.RedisURL, "-log-level", "warn")
	if err != nil {
		return res, err
	}
	defer srv.stop()
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\nserver log (tail):\n%s", err, srv.logTail(3000))
		}
	}()

	ropt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return res, err
	}
	ropt.PoolSize = 1
	rdb := redis.NewClient(ropt)
	defer rdb.Close()
	before, err := srv.scrape(ctx)
	if err != nil {
		return res, err
	}

	// The streams spread over enough connections for the server's
	// default -max-concurrent-streams (100 per connection).
	conns := make([]*grpc.ClientConn, cfg.Streams/80+2)
	for i := range conns {
		if conns[i], err = grpc.NewClient("passthrough:///"+srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			return res, err
		}
		defer conns[i].Close()
	}
	api := func(i int) vspb.ViewerSessionServiceClient {
		return vspb.NewViewerSessionServiceClient(conns[i%len(conns)])
	}
	probeAPI := vspb.NewViewerSessionServiceClient(conns[len(conns)-1])

	mark := func(streams int) error {
		n, err := connectedClients(ctx, rdb)
		if err != nil {
			return err
		}
		m := StreamsMark{Streams: streams, RedisClients: n, ServerFDs: srv.fds(), LoadAvg: loadAvg()}
		res.Marks = append(res.Marks, m)
		logf("%6d streams open: Redis connected_clients %d, server fds %d, load %s", streams, n, m.ServerFDs, m.LoadAvg)
		return nil
	}
	probe := func(streams int) (StreamsProbe, error) {
		const collisions = "vss_client_id_collisions_total"
		before, err := srv.scrape(ctx)
		if err != nil {
			return StreamsProbe{}, err
		}
		p, err := probeCalls(ctx, probeAPI, probeARNs, strconv.Itoa(streams), cfg.Probes, cfg.ProbeConcurrency)
		p.Streams, p.LoadAvg = streams, loadAvg()
		if err != nil {
			return p, err
		}
		after, err := srv.scrape(ctx)
		if err != nil {
			return p, err
		}
		p.Collisions = after[collisions] - before[collisions]
		logf("%6d streams open: CreateSession %v; GetSession %v; %d errors %q; %v clientId collisions; load %s", streams, p.Create, p.Get, p.Errors, p.FirstErrors, p.Collisions, p.LoadAvg)
		return p, nil
	}

	// Warm: the server resolves each probe channel once (and caches its
	// ICE servers), as a running replica has.
	if _, err := probeCalls(ctx, probeAPI, probeARNs, "warm", len(probeARNs), 4); err != nil {
		return res, fmt.Errorf("warm: %w", err)
	}
	if err := mark(0); err != nil {
		return res, err
	}
	if res.Idle, err = probe(0); err != nil {
		return res, err
	}

	sctx, cancelStreams := context.WithCancel(ctx)
	var (
		streamErrs atomic.Int64
		settled    atomic.Int64
		errMu      sync.Mutex
		wg         sync.WaitGroup
	)
	noteErr := func(format string, args ...any) {
		errMu.Lock()
		defer errMu.Unlock()
		if len(res.FirstErrors) < 5 {
			res.FirstErrors = append(res.FirstErrors, fmt.Sprintf(format, args...))
		}
	}
	defer func() {
		cancelStreams()
		wg.Wait()
	}()
	marks := append(append([]int(nil), cfg.Marks...), cfg.Streams)
	opened := 0
	start := time.Now()
	var openErrs atomic.Int64
	for _, m := range marks {
		if m <= opened || m > cfg.Streams {
			continue
		}
		err := forEach(ctx, m-opened, cfg.OpenConcurrency, func(ctx context.Context, j int) error {
			i := opened + j
			if err := openStream(ctx, sctx, api(i), streamARNs[i/cfg.PerChannel], i, cfg.Kind, &wg, func() { settled.Add(1) }, func(err error) {
				streamErrs.Add(1)
				noteErr("stream %d ended: %v", i, err)
			}); err != nil {
				openErrs.Add(1)
				noteErr("stream %d: %v", i, err)
			}
			return nil
		})
		if err != nil {
			return res, err
		}
		opened = m
		if m == cfg.Streams {
			res.Opened = time.Since(start)
		}
		if err := mark(m); err != nil {
			return res, err
		}
	}
	// Every session reaches AWAITING_OFFER (its KVS connection is up,
	// paced per channel) before the busy probe: open streams, no opening.
	if err := pollUntil(ctx, 10*time.Minute, func() bool { return settled.Load() >= int64(cfg.Streams)-openErrs.Load() }); err != nil {
		return res, fmt.Errorf("%d of %d sessions reached AWAITING_OFFER: %w", settled.Load(), cfg.Streams, err)
	}
	res.Settled = time.Since(start)
	logf("%6d streams open, every session AWAITING_OFFER after %v", cfg.Streams, res.Settled.Round(time.Millisecond))
	res.ServerRSS = srv.rss()
	if res.Busy, err = probe(cfg.Streams); err != nil {
		return res, err
	}
	if cfg.Hold > 0 {
		logf("%6d streams open: holding them for %v (server pid %d)", cfg.Streams, cfg.Hold, srv.cmd.Process.Pid)
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(cfg.Hold):
		}
	}
	res.OpenErrors, res.StreamErrors = int(openErrs.Load()), int(streamErrs.Load())
	after, err := srv.scrape(ctx)
	if err != nil {
		return res, err
	}
	res.StoreErrors = after["vss_redis_errors_total"] - before["vss_redis_errors_total"]
	res.PoolTimeouts = after["vss_redis_pool_timeouts_total"] - before["vss_redis_pool_timeouts_total"]
	for series, v := range after {
		if strings.HasPrefix(series, "vss_redis_errors_total{") && v > before[series] {
			res.FirstErrors = append(res.FirstErrors, fmt.Sprintf("%s grew by %v", series, v-before[series]))
		}
	}
	return res, nil
}

// streamKeys are the API keys of the streams' creates (the first 32; see
// keyed) and of figure (i)'s calls (all 48): CreateSession is rate limited
// per key (by default), and the figures are about streams and costs, so
// the creates spread over many keys.
var streamKeys = keyList("", 48)

// probeKeys are the probes' own keys: enough that a probe of 10,000 pairs
// at the idle server's pace (about 2,200 a second) stays within the
// default limit (50 CreateSession calls a second per key, burst 100).
var probeKeys = keyList("probe-", 64)

// keyList is n API keys named apiKey-<infix><i>.
func keyList(infix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s-%s%02d", apiKey, infix, i)
	}
	return keys
}

// keyed adds the i-th API key (of the opening keys, or of the probe keys
// when probe is set) to ctx.
func keyed(ctx context.Context, i int, probe bool) context.Context {
	if probe {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+probeKeys[i%len(probeKeys)])
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+streamKeys[i%32])
}

// createRetrying creates a session, waiting out RESOURCE_EXHAUSTED with
// RetryInfo (a rate limit) up to 20 times.
func createRetrying(ctx context.Context, api vspb.ViewerSessionServiceClient, i int, req *vspb.CreateSessionRequest) (*vspb.CreateSessionResponse, error) {
	for try := 0; ; try++ {
		cs, err := api.CreateSession(keyed(ctx, i, false), req)
		st := status.Convert(err)
		if err == nil || st.Code() != codes.ResourceExhausted || try == 20 {
			return cs, err
		}
		wait := 100 * time.Millisecond
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok {
				wait = ri.GetRetryDelay().AsDuration()
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// openStream creates session i on arn and opens its app stream on
// sctx, returning once the stream is open (Joined, or the first event);
// settled is called when the session reaches AWAITING_OFFER (its signaling
// connection is up), ended if the stream ends before sctx does.
func openStream(ctx, sctx context.Context, api vspb.ViewerSessionServiceClient, arn string, i int, kind string, wg *sync.WaitGroup, settled func(), ended func(error)) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cs, err := createRetrying(cctx, api, i, &vspb.CreateSessionRequest{Channel: &vspb.Channel{Arn: arn}, ViewerId: fmt.Sprintf("viewer-%d", i)})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	name, token := cs.GetSession().GetName(), cs.GetSessionToken()
	var recv func() error
	switch kind {
	case "connect":
		st, err := api.Connect(withToken(sctx, token))
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		if err := st.Send(&vspb.ConnectRequest{Message: &vspb.ConnectRequest_Join{Join: &vspb.Join{Name: name}}}); err != nil {
			return fmt.Errorf("join: %w", err)
		}
		first, err := st.Recv()
		if err != nil || first.GetJoined() == nil {
			return fmt.Errorf("join: first message %v, %v", first, err)
		}
		// At AWAITING_OFFER the app sends one message, a media report
		// without a peer connection (what an app reports before it has
		// one), and the stream counts as settled when it is acknowledged:
		// the server's receiver of a stream has then handled an app
		// message, as every live stream's has (a receiver that never
		// handles one keeps a smaller stack).
		recv = func() error {
			m, err := st.Recv()
			if m.GetEvent().GetState() == vspb.SessionState_SESSION_STATE_AWAITING_OFFER {
				if serr := st.Send(&vspb.ConnectRequest{AppSequence: 1, Message: &vspb.ConnectRequest_MediaReport{MediaReport: &vspb.MediaReport{}}}); serr != nil {
					return fmt.Errorf("media report: %w", serr)
				}
			}
			if m.GetAck().GetAppSequence() == 1 {
				settled()
			}
			return err
		}
	default:
		st, err := api.WatchSession(withToken(sctx, token), &vspb.WatchSessionRequest{Name: name})
		if err != nil {
			return fmt.Errorf("watch: %w", err)
		}
		if _, err := st.Recv(); err != nil {
			return fmt.Errorf("watch: first event: %w", err)
		}
		recv = func() error {
			m, err := st.Recv()
			if m.GetEvent().GetState() == vspb.SessionState_SESSION_STATE_AWAITING_OFFER {
				settled()
			}
			return err
		}
	}
	wg.Go(func() {
		for {
			if err := recv(); err != nil {
				if sctx.Err() == nil {
					ended(err)
				}
				return
			}
		}
	})
	return nil
}

// probeCalls times n CreateSession + GetSession pairs on the probe
// channels, concurrency at a time, then closes the sessions (untimed).
// The viewer ids are probe-<phase>-<i>: each phase needs its own. A viewer
// id's first clientId cools down for a minute after its session closes,
// so a phase that reused the one before's would find every first choice
// taken and take the allocator's other way (three more round trips): a
// different CreateSession from the phase it is compared with.
func probeCalls(ctx context.Context, api vspb.ViewerSessionServiceClient, arns []string, phase string, n, concurrency int) (StreamsProbe, error) {
	var (
		mu          sync.Mutex
		create, get []time.Duration
		names       []string
		p           StreamsProbe
	)
	err := forEach(ctx, n, concurrency, func(ctx context.Context, i int) error {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		t0 := time.Now()
		cs, err := api.CreateSession(keyed(cctx, i, true), &vspb.CreateSessionRequest{Channel: &vspb.Channel{Arn: arns[i%len(arns)]}, ViewerId: fmt.Sprintf("probe-%s-%d", phase, i)})
		t1 := time.Now()
		var gerr error
		if err == nil {
			_, gerr = api.GetSession(keyed(cctx, i, true), &vspb.GetSessionRequest{Name: cs.GetSession().GetName()})
		}
		t2 := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if err != nil || gerr != nil {
			p.Errors++
			if len(p.FirstErrors) < 3 {
				p.FirstErrors = append(p.FirstErrors, errors.Join(err, gerr).Error())
			}
			return nil
		}
		create, get = append(create, t1.Sub(t0)), append(get, t2.Sub(t1))
		names = append(names, cs.GetSession().GetName())
		return nil
	})
	p.Create, p.Get = NewDist(create), NewDist(get)
	if err != nil {
		return p, err
	}
	cerr := forEach(ctx, len(names), concurrency, func(ctx context.Context, i int) error {
		_, err := api.CloseSession(keyed(ctx, i, true), &vspb.CloseSessionRequest{Name: names[i]})
		return err
	})
	if cerr != nil {
		return p, fmt.Errorf("close probe sessions: %w", cerr)
	}
	return p, nil
}

// connectedClients is INFO clients' connected_clients.
func connectedClients(ctx context.Context, rdb *redis.Client) (int, error) {
	in, err := redisinfo.Read(ctx, rdb, "clients")
	if err != nil {
		return 0, err
	}
	return in.Int("connected_clients")
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// raiseFileLimit raises this process's open-file limit (inherited by the
// server it starts) to the hard limit, and the hard limit too when it may
// (root).
func raiseFileLimit() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return
	}
	want := syscall.Rlimit{Cur: max(l.Cur, 1<<20), Max: max(l.Max, 1<<20)}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
		return
	}
	l.Cur = l.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}

// BuildServer builds ./cmd/server of the module this runs in, with the
// logTo returns a printf that writes a line to w, or nothing when w is nil.
func logTo(w io.Writer) func(format string, args ...any) {
	return func(format string, args ...any) {
		if w != nil {
			fmt.Fprintf(w, format+"\n", args...)
		}
	}
}

// serverWorkdir makes a temporary directory (prefix) for server processes
// and returns it with the server binary: bin, or one built there when bin
// is empty. The caller removes dir.
func serverWorkdir(ctx context.Context, prefix, bin string) (dir, server string, err error) {
	if dir, err = os.MkdirTemp("", prefix); err != nil {
		return "", "", err
	}
	if bin == "" {
		if bin, err = BuildServer(ctx, dir); err != nil {
			os.RemoveAll(dir)
			return "", "", err
		}
	}
	return dir, bin, nil
}

// writeCA writes the emulator's CA certificate into dir for the servers'
// -kvs-ca-file and returns its path.
func writeCA(dir string, emu *kvsemu.Emulator) (string, error) {
	f := filepath.Join(dir, "kvs-ca.pem")
	return f, os.WriteFile(f, emu.CACertPEM(), 0o600)
}

// default settings of go build, into dir and returns its path.
func BuildServer(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(dir, "server")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/server")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/server: %w\n%s", err, out)
	}
	return bin, nil
}

// serverProc is one server process.
type serverProc struct {
	cmd                *exec.Cmd
	grpcAddr, httpAddr string
	logPath            string
	exited             chan struct{}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startServer starts the server binary on the emulator with nothing but
// the addresses, the credentials, the API keys and args set, and waits
// until it is ready. dir is the server's own (its HOME and its log). The
// ports are free when picked but may be taken before the server binds
// them (other tests pick ports too): a server that exits because an
// address is in use is started again on new ones, up to three times.
func startServer(ctx context.Context, bin, dir string, emu *kvsemu.Emulator, caFile string, args ...string) (*serverProc, error) {
	return startServerEnv(ctx, bin, dir, emu, caFile, nil, args...)
}

// startServerEnv is startServer with godebug added to the server's
// GODEBUG (after the load's own, if any).
func startServerEnv(ctx context.Context, bin, dir string, emu *kvsemu.Emulator, caFile string, godebug []string, args ...string) (*serverProc, error) {
	for attempt := 1; ; attempt++ {
		s, err := startServerOnce(ctx, bin, dir, emu, caFile, godebug, args...)
		if err == nil || attempt == 3 || !errors.Is(err, errAddrInUse) {
			return s, err
		}
	}
}

// errAddrInUse: the server exited because a port it was given was taken.
var errAddrInUse = errors.New("the server exited: an address it was given is in use")

func startServerOnce(ctx context.Context, bin, dir string, emu *kvsemu.Emulator, caFile string, godebug []string, args ...string) (*serverProc, error) {
	grpcAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s := &serverProc{grpcAddr: grpcAddr, httpAddr: httpAddr, logPath: filepath.Join(dir, "server.log"), exited: make(chan struct{})}
	logFile, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	creds := emu.Credentials()
	s.cmd = exec.Command(bin, append([]string{
		"-grpc-addr", grpcAddr, "-http-addr", httpAddr,
		"-kvs-endpoint", emu.Endpoint(), "-kvs-ca-file", caFile, "-aws-region", emu.Region(),
	}, args...)...)
	s.cmd.Env = []string{
		"VS_API_KEYS=" + strings.Join(streamKeys, ",") + "," + strings.Join(probeKeys, ","),
		"AWS_ACCESS_KEY_ID=" + creds.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + creds.SecretAccessKey,
		"AWS_EC2_METADATA_DISABLED=true",
		"HOME=" + dir,
	}
	// The runtime's settings reach the server when the load has them, to
	// profile or compare (GODEBUG=memprofilerate=N vsload ...); unset, the
	// server runs with its own defaults.
	for _, k := range []string{"GOGC", "GOMEMLIMIT"} {
		if v, ok := os.LookupEnv(k); ok {
			s.cmd.Env = append(s.cmd.Env, k+"="+v)
		}
	}
	if v, ok := os.LookupEnv("GODEBUG"); ok && v != "" {
		godebug = append([]string{v}, godebug...)
	}
	if len(godebug) > 0 {
		s.cmd.Env = append(s.cmd.Env, "GODEBUG="+strings.Join(godebug, ","))
	}
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		_ = s.cmd.Wait()
		logFile.Close()
		close(s.exited)
	}()
	err = pollUntil(ctx, 60*time.Second, func() bool {
		select {
		case <-s.exited:
			return true
		default:
		}
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	select {
	case <-s.exited:
		err = errors.New("the server exited")
		if strings.Contains(s.logTail(3000), "address already in use") {
			err = errAddrInUse
		}
	default:
	}
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("server not ready: %w\n%s", err, s.logTail(3000))
	}
	return s, nil
}

// stop ends the server (SIGTERM, then SIGKILL after 30 s).
func (s *serverProc) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func (s *serverProc) logTail(n int) string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// fds counts the server's open file descriptors (Linux), -1 if unknown.
func (s *serverProc) fds() int {
	if runtime.GOOS != "linux" {
		return -1
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// rss is the server's resident set in bytes (Linux), 0 if unknown.
func (s *serverProc) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// scrape sums the server's /metrics samples per metric name.
func (s *serverProc) scrape(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.httpAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		name, _, _ := strings.Cut(line[:i], "{")
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[name] += v
			if name != line[:i] {
				out[line[:i]] = v
			}
		}
	}
	return out, sc.Err()
}

// fetchProfile takes a CPU profile of seconds from the server (started
// with -pprof) and writes it to path.
func (s *serverProc) fetchProfile(ctx context.Context, seconds int, path string) error {
	return s.fetch(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds), path)
}
