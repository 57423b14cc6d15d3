package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
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
	"github.com/acme/viewersession/kvsemu/camera"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// SessionCostConfig sizes figure (i): what a session costs the real server
// binary on Redis, against the same binary with its state in memory.
type SessionCostConfig struct {
	// ServerBin is the server binary; empty: go build ./cmd/server.
	ServerBin string
	// RedisURL is the Redis of the Redis-mode server: a private one, whose
	// only client is that server (its command counts are the server's).
	// Required.
	RedisURL string
	// Creates is the CreateSession calls of one timed run. Default 2,000.
	Creates int
	// Sessions is the full sessions run on each server. Default 500.
	Sessions int
	// Concurrency is the callers at once, creates and full sessions alike.
	// Default 16.
	Concurrency int
	// Runs is the timed create runs per server, and the parts the full
	// sessions are split into, the servers alternating. Default 3.
	Runs int
	// SessionChannels spreads the full sessions, each channel with a
	// camera. Default min(64, Sessions).
	SessionChannels int
	// Idle is how long Redis's commands are counted with both servers up
	// and idle (the Redis-mode server's background). Default 5s; negative:
	// not counted.
	Idle time.Duration
	// ProfileDir, if set, starts both servers with -pprof and writes a CPU
	// profile of ProfileSeconds (default 2) from each server's first create
	// run and first full-session part there (<mode>-create.pprof,
	// <mode>-session.pprof). Size Creates and Sessions so that a part
	// outlasts the profile.
	ProfileDir     string
	ProfileSeconds int
	// Log, if set, gets progress lines.
	Log io.Writer
}

func (c SessionCostConfig) withDefaults() SessionCostConfig {
	if c.Creates <= 0 {
		c.Creates = 2000
	}
	if c.Sessions <= 0 {
		c.Sessions = 500
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.Runs <= 0 {
		c.Runs = 3
	}
	if c.SessionChannels <= 0 {
		c.SessionChannels = min(64, c.Sessions)
	}
	if c.Idle == 0 {
		c.Idle = 5 * time.Second
	}
	if c.ProfileSeconds <= 0 {
		c.ProfileSeconds = 2
	}
	return c
}

// SessionCostMode is one server's part of figure (i).
type SessionCostMode struct {
	// Mode is "memory" or "redis".
	Mode string
	// CreatePerSecond is the timed creates over the summed wall time of
	// the timed runs; Create their latencies.
	CreatePerSecond float64
	Create          Dist
	// CreateCPU is the server's CPU (user + system) over the timed
	// creates; RedisCreateCPU and RedisSessionCPU Redis's own (INFO cpu)
	// over the timed creates and the full sessions (Redis mode only).
	CreateCPU, RedisCreateCPU, RedisSessionCPU time.Duration
	// CreateTrips and SessionTrips are the server's Redis round trips
	// (vss_redis_round_trips_total) over the timed creates and the full
	// sessions; SessionTripsBy the latter by command (Redis mode only).
	CreateTrips, SessionTrips float64
	SessionTripsBy            map[string]float64
	// Sessions full sessions took SessionCPU of the server's CPU (user +
	// system) and SessionWall of wall time, from the first create until
	// the last session's KVS connection is gone and the server is quiet;
	// Session is each one's time from its create to its stream's end
	// after CLOSED.
	Sessions                int
	SessionCPU, SessionWall time.Duration
	Session                 Dist
	// RateLimited counts the CreateSession calls retried after the
	// per-key rate limit (RESOURCE_EXHAUSTED), in both parts.
	RateLimited int
	// CreateCommands and SessionCommands are the commands Redis ran (INFO
	// commandstats, which counts the commands inside scripts too) over
	// the timed create runs and over the full sessions; CreateProcessed
	// and SessionProcessed its total_commands_processed over the same
	// (this figure's INFO commands left out of both);
	// ByCommand the full sessions' commands by name. Redis mode only.
	CreateCommands, CreateProcessed   int64
	SessionCommands, SessionProcessed int64
	ByCommand                         map[string]int64
	// StoreErrors is the growth of the server's vss_redis_errors_total and
	// vss_redis_pool_timeouts_total over the figure.
	StoreErrors float64
	// RSS is the server's resident memory at the end.
	RSS int64
}

// CPUPerSession is the server's CPU per full session.
func (m SessionCostMode) CPUPerSession() time.Duration {
	if m.Sessions == 0 {
		return 0
	}
	return m.SessionCPU / time.Duration(m.Sessions)
}

// SessionCostResult is figure (i).
type SessionCostResult struct {
	Config        SessionCostConfig
	Memory, Redis SessionCostMode
	// IdleCommandsPerSecond is Redis's total_commands_processed per second
	// with both servers idle: the Redis-mode server's background
	// (heartbeats, sweeps, renewals), part of every count above.
	IdleCommandsPerSecond float64
	// LoadStart and LoadEnd are the machine's load average.
	LoadStart, LoadEnd string
}

// costSide is one server of figure (i) and what it measured.
type costSide struct {
	res         *SessionCostMode
	srv         *serverProc
	apis        []vspb.ViewerSessionServiceClient
	createARNs  []string
	sessionARNs []string
	// rdb counts Redis's commands (Redis mode only).
	rdb     *redis.Client
	limited atomic.Int64
}

func (s *costSide) api(i int) vspb.ViewerSessionServiceClient { return s.apis[i%len(s.apis)] }

// SessionCost starts the real server binary twice with its default
// settings, the KVS emulator and its cameras in this process: once with
// its state in memory (no -redis-url: the in-memory store and allocator,
// one replica) and once on cfg.RedisURL (the default pool, the
// cluster-enabled manager). Both run throughout, loaded one at a time.
// It times cfg.Runs runs of cfg.Creates CreateSession calls on each,
// cfg.Concurrency at a time, the servers alternating and the sessions
// closed untimed between runs; then it runs cfg.Sessions full sessions on
// each (create; WatchSession with the session token, which attaches; a
// pion offer by Signal; the camera's answer; a state report of ICE and
// peer connected; CONNECTED; CloseSession; CLOSED), in cfg.Runs parts
// alternating, and takes the server's CPU time and Redis's command counts
// over them.
func SessionCost(ctx context.Context, cfg SessionCostConfig) (res SessionCostResult, err error) {
	cfg = cfg.withDefaults()
	res.Config = cfg
	res.Memory.Mode, res.Redis.Mode = "memory", "redis"
	logf := logTo(cfg.Log)
	if cfg.RedisURL == "" {
		return res, errors.New("no Redis URL")
	}
	res.LoadStart = loadAvg()
	raiseFileLimit()
	dir, bin, err := serverWorkdir(ctx, "vsload-sessioncost-", cfg.ServerBin)
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)

	// The cameras answer over one signaling connection each: lift KVS's
	// per-connection message rates so that the figure measures the
	// service, not the camera's quota (as figure a does).
	ecfg := kvsemu.DefaultConfig()
	ecfg.Addr = "127.0.0.1:0"
	ecfg.Limits.SDPPerSecond = oaSDPPerSecond
	ecfg.Limits.ICEPerSecond = oaICEPerSecond
	emu, err := kvsemu.Start(ctx, ecfg)
	if err != nil {
		return res, err
	}
	defer emu.Close()
	hc := emu.HTTPClient()
	defer hc.CloseIdleConnections()
	caFile, err := writeCA(dir, emu)
	if err != nil {
		return res, err
	}

	mem, red := &costSide{res: &res.Memory}, &costSide{res: &res.Redis}
	sides := []*costSide{mem, red}
	for _, s := range sides {
		// At most 10 sessions per channel in a create run (KVS's viewers
		// per channel, the server's default live sessions per channel).
		for i := range (cfg.Creates + 9) / 10 {
			arn, err := emu.CreateChannel(fmt.Sprintf("cost-%s-c%d", s.res.Mode, i), 60*time.Second)
			if err != nil {
				return res, err
			}
			s.createARNs = append(s.createARNs, arn)
		}
		for i := range cfg.SessionChannels {
			arn, err := emu.CreateChannel(fmt.Sprintf("cost-%s-s%d", s.res.Mode, i), 60*time.Second)
			if err != nil {
				return res, err
			}
			s.sessionARNs = append(s.sessionARNs, arn)
			cam, err := startFastCamera(emu, hc, arn, camera.CSample)
			if err != nil {
				return res, err
			}
			defer cam.stop()
		}
	}
	if err := camerasConnected(ctx, emu, append(append([]string(nil), mem.sessionARNs...), red.sessionARNs...)); err != nil {
		return res, fmt.Errorf("cameras: %w", err)
	}

	// The servers: default settings but for the addresses, the
	// credentials, the API keys and, for one, the Redis URL.
	for _, s := range sides {
		sdir := filepath.Join(dir, s.res.Mode)
		if err := os.Mkdir(sdir, 0o700); err != nil {
			return res, err
		}
		args := []string{"-log-level", "warn"}
		if s == red {
			args = append(args, "-redis-url", cfg.RedisURL)
		}
		if cfg.ProfileDir != "" {
			args = append(args, "-pprof")
		}
		if s.srv, err = startServer(ctx, bin, sdir, emu, caFile, args...); err != nil {
			return res, fmt.Errorf("%s server: %w", s.res.Mode, err)
		}
		defer s.srv.stop()
		for range 4 {
			cc, err := grpc.NewClient("passthrough:///"+s.srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return res, err
			}
			defer cc.Close()
			s.apis = append(s.apis, vspb.NewViewerSessionServiceClient(cc))
		}
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\nmemory server log (tail):\n%s\nredis server log (tail):\n%s", err, mem.srv.logTail(1500), red.srv.logTail(1500))
		}
	}()
	ropt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return res, err
	}
	ropt.PoolSize = 1
	red.rdb = redis.NewClient(ropt)
	defer red.rdb.Close()
	if _, err := readRedisCounts(ctx, red.rdb); err != nil { // dials, off the counts
		return res, err
	}

	// Warm: each server resolves every channel once and caches its ICE
	// servers, as a running replica has.
	for _, s := range sides {
		arns := append(append([]string(nil), s.createARNs...), s.sessionARNs...)
		names := make([]string, len(arns))
		err := forEach(ctx, len(arns), cfg.Concurrency, func(ctx context.Context, i int) error {
			cs, err := s.create(ctx, i, &vspb.CreateSessionRequest{Channel: &vspb.Channel{Arn: arns[i]}, ViewerId: fmt.Sprintf("warm-%d", i)})
			names[i] = cs.GetSession().GetName()
			return err
		})
		if err == nil {
			err = s.closeAll(ctx, names, cfg.Concurrency)
		}
		if err != nil {
			return res, fmt.Errorf("warm the %s server: %w", s.res.Mode, err)
		}
	}
	before := make([]map[string]float64, len(sides))
	for i, s := range sides {
		if before[i], err = s.srv.scrape(ctx); err != nil {
			return res, err
		}
	}
	logf("both servers warm (%d + %d channels each); load %s", len(mem.createARNs), len(mem.sessionARNs), loadAvg())

	if cfg.Idle > 0 {
		c0, err := readRedisCounts(ctx, red.rdb)
		if err != nil {
			return res, err
		}
		t0 := time.Now()
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(cfg.Idle):
		}
		c1, err := readRedisCounts(ctx, red.rdb)
		if err != nil {
			return res, err
		}
		res.IdleCommandsPerSecond = float64(c1.since(c0).processed) / time.Since(t0).Seconds()
		logf("both servers idle: Redis ran %.1f commands/s", res.IdleCommandsPerSecond)
	}

	// The timed creates, the servers alternating.
	var createWall [2]time.Duration
	var createLat [2][]time.Duration
	for r := range cfg.Runs {
		for j := range sides {
			k := (j + r) % len(sides)
			s := sides[k]
			var prof <-chan error
			if r == 0 {
				prof = s.profile(ctx, cfg, "create")
			}
			wall, lat, err := s.createRun(ctx, cfg, r)
			if err == nil {
				err = waitProfile(prof)
			}
			if err != nil {
				return res, fmt.Errorf("%s server, create run %d: %w", s.res.Mode, r+1, err)
			}
			createWall[k] += wall
			createLat[k] = append(createLat[k], lat...)
			logf("create run %d of %d, %s: %.0f/s, %v; load %s", r+1, cfg.Runs, s.res.Mode, float64(cfg.Creates)/wall.Seconds(), NewDist(lat), loadAvg())
		}
	}
	for k, s := range sides {
		s.res.CreatePerSecond = float64(cfg.Runs*cfg.Creates) / createWall[k].Seconds()
		s.res.Create = NewDist(createLat[k])
	}

	// The full sessions, in parts, the servers alternating.
	offers, err := makeOffers(offerSlots)
	if err != nil {
		return res, err
	}
	var sessionLat [2][]time.Duration
	for r := range cfg.Runs {
		from, to := cfg.Sessions*r/cfg.Runs, cfg.Sessions*(r+1)/cfg.Runs
		for j := range sides {
			k := (j + r) % len(sides)
			s := sides[k]
			var prof <-chan error
			if r == 0 {
				prof = s.profile(ctx, cfg, "session")
			}
			lat, err := s.sessionPart(ctx, emu, cfg.Concurrency, from, to, offers)
			if err == nil {
				err = waitProfile(prof)
			}
			if err != nil {
				return res, fmt.Errorf("%s server, full sessions %d-%d: %w", s.res.Mode, from, to, err)
			}
			sessionLat[k] = append(sessionLat[k], lat...)
			logf("full sessions %d-%d, %s: %v; load %s", from, to, s.res.Mode, NewDist(lat), loadAvg())
		}
	}
	for k, s := range sides {
		s.res.Session = NewDist(sessionLat[k])
		s.res.RateLimited = int(s.limited.Load())
		s.res.RSS = s.srv.rss()
		after, err := s.srv.scrape(ctx)
		if err != nil {
			return res, err
		}
		for _, m := range []string{"vss_redis_errors_total", "vss_redis_pool_timeouts_total"} {
			s.res.StoreErrors += after[m] - before[k][m]
		}
	}
	res.LoadEnd = loadAvg()
	return res, nil
}

// tripsMetric counts the server's Redis round trips.
const tripsMetric = "vss_redis_round_trips_total"

// profile starts a CPU profile of cfg.ProfileSeconds on the server into
// cfg.ProfileDir/<mode>-<part>.pprof; nil without a ProfileDir.
func (s *costSide) profile(ctx context.Context, cfg SessionCostConfig, part string) <-chan error {
	if cfg.ProfileDir == "" {
		return nil
	}
	done := make(chan error, 1)
	go func() {
		done <- s.srv.fetchProfile(ctx, cfg.ProfileSeconds, filepath.Join(cfg.ProfileDir, s.res.Mode+"-"+part+".pprof"))
	}()
	return done
}

// waitProfile waits for a profile started by profile (nil: none).
func waitProfile(done <-chan error) error {
	if done == nil {
		return nil
	}
	return <-done
}

// createRun times cfg.Creates creates (run r), then closes the sessions,
// untimed, and waits until each is CLOSED in the server's store (its
// channel slot free for the next run).
func (s *costSide) createRun(ctx context.Context, cfg SessionCostConfig, r int) (time.Duration, []time.Duration, error) {
	names := make([]string, cfg.Creates)
	var c0 redisCounts
	if s.rdb != nil {
		var err error
		if c0, err = readRedisCounts(ctx, s.rdb); err != nil {
			return 0, nil, err
		}
	}
	trips0, err := s.srv.scrape(ctx)
	if err != nil {
		return 0, nil, err
	}
	cpu0 := s.srv.cpu()
	wall, lat, err := timed(ctx, cfg.Creates, cfg.Concurrency, func(ctx context.Context, i int) error {
		cs, err := s.create(ctx, i, &vspb.CreateSessionRequest{
			Channel: &vspb.Channel{Arn: s.createARNs[i%len(s.createARNs)]}, ViewerId: fmt.Sprintf("c%d-%d", r, i),
		})
		names[i] = cs.GetSession().GetName()
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	s.res.CreateCPU += s.srv.cpu() - cpu0
	trips1, err := s.srv.scrape(ctx)
	if err != nil {
		return 0, nil, err
	}
	s.res.CreateTrips += trips1[tripsMetric] - trips0[tripsMetric]
	if s.rdb != nil {
		c1, err := readRedisCounts(ctx, s.rdb)
		if err != nil {
			return 0, nil, err
		}
		d := c1.since(c0)
		s.res.RedisCreateCPU += d.cpu
		s.res.CreateCommands += d.commands
		s.res.CreateProcessed += d.processed
	}
	return wall, lat, s.closeAll(ctx, names, cfg.Concurrency)
}

// sessionPart runs full sessions [from, to) and adds the server's CPU and
// Redis's commands over them, until every KVS connection of theirs is
// gone, to the side's figures.
func (s *costSide) sessionPart(ctx context.Context, emu *kvsemu.Emulator, concurrency, from, to int, offers []string) ([]time.Duration, error) {
	var c0 redisCounts
	if s.rdb != nil {
		var err error
		if c0, err = readRedisCounts(ctx, s.rdb); err != nil {
			return nil, err
		}
	}
	trips0, err := s.srv.scrape(ctx)
	if err != nil {
		return nil, err
	}
	cpu0, t0 := s.srv.cpu(), time.Now()
	lat := make([]time.Duration, to-from)
	err = forEach(ctx, to-from, concurrency, func(ctx context.Context, j int) error {
		i := from + j
		d, err := s.fullSession(ctx, i, s.sessionARNs[i%len(s.sessionARNs)], offers[i%len(offers)])
		lat[j] = d
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := waitNoViewers(ctx, emu); err != nil {
		return nil, err
	}
	if err := s.settle(ctx); err != nil {
		return nil, err
	}
	s.res.SessionCPU += s.srv.cpu() - cpu0
	trips1, err := s.srv.scrape(ctx)
	if err != nil {
		return nil, err
	}
	s.res.SessionTrips += trips1[tripsMetric] - trips0[tripsMetric]
	for k, v := range trips1 {
		if cmd, ok := strings.CutPrefix(k, tripsMetric+`{command="`); ok {
			if s.res.SessionTripsBy == nil {
				s.res.SessionTripsBy = make(map[string]float64)
			}
			s.res.SessionTripsBy[strings.TrimSuffix(cmd, `"}`)] += v - trips0[k]
		}
	}
	s.res.SessionWall += time.Since(t0)
	s.res.Sessions += to - from
	if s.rdb != nil {
		c1, err := readRedisCounts(ctx, s.rdb)
		if err != nil {
			return nil, err
		}
		d := c1.since(c0)
		s.res.RedisSessionCPU += d.cpu
		s.res.SessionCommands += d.commands
		s.res.SessionProcessed += d.processed
		if s.res.ByCommand == nil {
			s.res.ByCommand = make(map[string]int64)
		}
		for name, n := range d.byName {
			s.res.ByCommand[name] += n
		}
	}
	return lat, nil
}

// settle waits, at most 2 s, for the sessions' last work after their KVS
// sockets closed (the actors' teardown: clientId cooldowns, leases): until
// the server used no CPU tick and sent Redis no command for 100 ms.
func (s *costSide) settle(ctx context.Context) error {
	deadline := time.Now().Add(2 * time.Second)
	cpu := s.srv.cpu()
	var counts redisCounts
	if s.rdb != nil {
		var err error
		if counts, err = readRedisCounts(ctx, s.rdb); err != nil {
			return err
		}
	}
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		now := s.srv.cpu()
		quiet := now == cpu
		cpu = now
		if s.rdb != nil {
			c, err := readRedisCounts(ctx, s.rdb)
			if err != nil {
				return err
			}
			quiet = quiet && c.since(counts).processed == 0
			counts = c
		}
		if quiet {
			return nil
		}
	}
	return nil
}

// fullSession runs session i on arn from its create to its end: the app
// watches it with its session token (which attaches it), offers sdp by
// Signal once it awaits the offer, reports ICE and peer connected once the
// camera answered; the backend closes it once CONNECTED, and the watch
// ends after CLOSED.
func (s *costSide) fullSession(ctx context.Context, i int, arn, sdp string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	start := time.Now()
	api := s.api(i)
	cs, err := s.create(ctx, i, &vspb.CreateSessionRequest{Channel: &vspb.Channel{Arn: arn}, ViewerId: fmt.Sprintf("s%d", i)})
	if err != nil {
		return 0, fmt.Errorf("create: %w", err)
	}
	name := cs.GetSession().GetName()
	app := withToken(ctx, cs.GetSessionToken())
	w, err := api.WatchSession(app, &vspb.WatchSessionRequest{Name: name})
	if err != nil {
		return 0, fmt.Errorf("watch %s: %w", name, err)
	}
	until := func(what string, match func(*vspb.SessionEvent) bool) error {
		for {
			m, err := w.Recv()
			if err != nil {
				return fmt.Errorf("%s: waiting for %s: %w", name, what, err)
			}
			e := m.GetEvent()
			if match(e) {
				return nil
			}
			if st := e.GetState(); st == vspb.SessionState_SESSION_STATE_FAILED || st == vspb.SessionState_SESSION_STATE_CLOSED {
				return fmt.Errorf("%s: ended (%s: %s) while waiting for %s", name, e.GetType(), e.GetMessage(), what)
			}
		}
	}
	inState := func(st vspb.SessionState) func(*vspb.SessionEvent) bool {
		return func(e *vspb.SessionEvent) bool { return e.GetState() == st }
	}
	if err := until("AWAITING_OFFER", inState(vspb.SessionState_SESSION_STATE_AWAITING_OFFER)); err != nil {
		return 0, err
	}
	if _, err := api.Signal(app, &vspb.SignalRequest{
		Name: name, AppSequence: 1,
		Message: &vspb.SignalRequest_Offer{Offer: &vspb.SessionDescription{Sdp: sdp}},
	}); err != nil {
		return 0, fmt.Errorf("%s: offer: %w", name, err)
	}
	if err := until("the answer", func(e *vspb.SessionEvent) bool { return e.GetType() == vspb.EventType_EVENT_TYPE_ANSWER }); err != nil {
		return 0, err
	}
	if _, err := api.Signal(app, &vspb.SignalRequest{
		Name: name, AppSequence: 2,
		Message: &vspb.SignalRequest_StateReport{StateReport: &vspb.ConnectionStateReport{
			IceState:  vspb.IceConnectionState_ICE_CONNECTION_STATE_CONNECTED,
			PeerState: vspb.PeerConnectionState_PEER_CONNECTION_STATE_CONNECTED,
		}},
	}); err != nil {
		return 0, fmt.Errorf("%s: state report: %w", name, err)
	}
	if err := until("CONNECTED", inState(vspb.SessionState_SESSION_STATE_CONNECTED)); err != nil {
		return 0, err
	}
	if _, err := api.CloseSession(keyedBy(ctx, i), &vspb.CloseSessionRequest{Name: name}); err != nil {
		return 0, fmt.Errorf("%s: close: %w", name, err)
	}
	if err := until("CLOSED", inState(vspb.SessionState_SESSION_STATE_CLOSED)); err != nil {
		return 0, err
	}
	// The stream ends with OK after the terminal event.
	if m, err := w.Recv(); !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("%s: after CLOSED the watch sent %v, %v; want its end", name, m, err)
	}
	return time.Since(start), nil
}

// keyedBy adds the i-th of the servers' API keys to ctx: CreateSession
// is rate limited per key (by default), so the calls spread over all of
// them.
func keyedBy(ctx context.Context, i int) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+streamKeys[i%len(streamKeys)])
}

// create creates a session with the i-th API key, waiting out the per-key
// rate limit (RESOURCE_EXHAUSTED with RetryInfo) up to 20 times; each wait
// is counted.
func (s *costSide) create(ctx context.Context, i int, req *vspb.CreateSessionRequest) (*vspb.CreateSessionResponse, error) {
	for try := 0; ; try++ {
		cs, err := s.api(i).CreateSession(keyedBy(ctx, i), req)
		st := status.Convert(err)
		if err == nil || st.Code() != codes.ResourceExhausted || try == 20 {
			return cs, err
		}
		wait := time.Duration(0)
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok {
				wait = ri.GetRetryDelay().AsDuration()
			}
		}
		if wait == 0 {
			return cs, err // not the rate limit (CHANNEL_FULL, ...)
		}
		s.limited.Add(1)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// closeAll closes the named sessions, then waits until the server reads
// each one back CLOSED (its record written, its channel slot free).
func (s *costSide) closeAll(ctx context.Context, names []string, concurrency int) error {
	return forEach(ctx, len(names), concurrency, func(ctx context.Context, i int) error {
		if _, err := s.api(i).CloseSession(keyedBy(ctx, i), &vspb.CloseSessionRequest{Name: names[i]}); err != nil {
			return fmt.Errorf("close %s: %w", names[i], err)
		}
		var last error
		err := pollUntil(ctx, 10*time.Second, func() bool {
			g, err := s.api(i).GetSession(keyedBy(ctx, i), &vspb.GetSessionRequest{Name: names[i]})
			last = err
			return err == nil && g.GetSession().GetState() == vspb.SessionState_SESSION_STATE_CLOSED
		})
		if err != nil {
			return fmt.Errorf("%s not read back CLOSED (last error %v): %w", names[i], last, err)
		}
		return nil
	})
}

// camerasConnected waits until every channel of arns has its master.
func camerasConnected(ctx context.Context, emu *kvsemu.Emulator, arns []string) error {
	want := make(map[string]bool, len(arns))
	for _, a := range arns {
		want[a] = true
	}
	return pollUntil(ctx, 20*time.Second, func() bool {
		n := 0
		for _, ch := range emu.Channels() {
			if want[ch.ARN] && ch.MasterConnected {
				n++
			}
		}
		return n == len(want)
	})
}

// redisCounts are a Redis server's command counts at one moment.
type redisCounts struct {
	// commands is the sum of INFO commandstats' calls, INFO's own left
	// out; byName the same by command.
	commands int64
	byName   map[string]int64
	// processed is INFO stats' total_commands_processed less the INFO
	// commands before it (neither counts the INFO that reads them): the
	// others' commands.
	processed int64
	// cpu is INFO cpu's used_cpu_user + used_cpu_sys: the redis-server's
	// own CPU time.
	cpu time.Duration
}

// since is c less an earlier c0.
func (c redisCounts) since(c0 redisCounts) redisCounts {
	d := redisCounts{commands: c.commands - c0.commands, processed: c.processed - c0.processed, cpu: c.cpu - c0.cpu, byName: maps.Clone(c.byName)}
	for name, n := range c0.byName {
		d.byName[name] -= n
		if d.byName[name] == 0 {
			delete(d.byName, name)
		}
	}
	return d
}

// readRedisCounts reads INFO stats, commandstats and cpu in one command.
func readRedisCounts(ctx context.Context, rdb *redis.Client) (redisCounts, error) {
	in, err := redisinfo.Read(ctx, rdb, "stats", "commandstats", "cpu")
	if err != nil {
		return redisCounts{}, err
	}
	if in.Processed < 0 {
		return redisCounts{}, errors.New("INFO stats has no total_commands_processed")
	}
	c := redisCounts{byName: make(map[string]int64), processed: in.Processed, cpu: in.CPU}
	for name, cmd := range in.Commands {
		if name == "info" {
			c.processed -= cmd.Calls // those before this one, as processed counts
			continue
		}
		c.byName[name] = cmd.Calls
		c.commands += cmd.Calls
	}
	return c, nil
}
