package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/acme/viewersession/kvsemu"
	"github.com/acme/viewersession/kvsemu/camera"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// The paths of the web-port figure.
const (
	pathDirect = iota
	pathWebOff
	pathWebOn
	webPortPaths
)

// WebPortConfig sizes the web-port figure: figure (a)'s offer->answer on
// two real server processes, one with the web port off and one with it
// on.
type WebPortConfig struct {
	// ServerBin is the server binary; empty: go build ./cmd/server.
	ServerBin string
	// Sessions is the number of concurrent sessions per path and round.
	Sessions int
	// Channels spreads them; default ceil(Sessions/10) per path.
	Channels int
	// Rounds default max(3, ceil(200/Sessions)).
	Rounds int
	// Spacing is the time between two offers of a round; default 20ms.
	Spacing time.Duration
	// Log, if set, gets progress lines.
	Log io.Writer
}

func (c WebPortConfig) withDefaults() WebPortConfig {
	oa := OfferAnswerConfig{Sessions: c.Sessions, Channels: c.Channels, Rounds: c.Rounds, Spacing: c.Spacing}.withDefaults()
	c.Sessions, c.Channels, c.Rounds, c.Spacing = oa.Sessions, oa.Channels, oa.Rounds, oa.Spacing
	return c
}

// WebPortResult is the web-port figure at one concurrency.
type WebPortResult struct {
	Config WebPortConfig
	// Direct is the baseline (a viewer's own WebSocket on the emulator),
	// WebOff the exchange through the server without a web port, WebOn
	// through the server with one (native gRPC on both).
	Direct, WebOff, WebOn Dist
	// WebCheck is what the on-server's web port answered, before and after
	// the rounds, to a Connect health check: proof that it served.
	WebCheck string
	// OffCPU and OnCPU are the servers' CPU time (user + system) over the
	// rounds; OffRSS and OnRSS their resident memory after them.
	OffCPU, OnCPU time.Duration
	OffRSS, OnRSS int64
	// LoadAvg is the machine's load average after the rounds.
	LoadAvg string
}

// WebPort measures offer->answer like OfferAnswer, but through two real
// server processes started from one binary at the same time with default
// settings and in-memory state: one with the web port off (the default),
// one with -web-addr set. The emulator and its fast cameras run in this
// process. Each round holds cfg.Sessions sessions on each server and as
// many direct viewers, live on channels of their own, and fires their
// offers interleaved, the order of the three paths rotating every round,
// so that all three see the same machine.
func WebPort(ctx context.Context, cfg WebPortConfig) (res WebPortResult, err error) {
	cfg = cfg.withDefaults()
	res.Config = cfg
	logf := logTo(cfg.Log)
	dir, bin, err := serverWorkdir(ctx, "vsload-webport-", cfg.ServerBin)
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)

	ecfg := kvsemu.DefaultConfig()
	ecfg.Addr = "127.0.0.1:0"
	ecfg.Limits.ViewerConnectsPerSecond = oaConnectsPerSecond
	ecfg.Limits.SDPPerSecond = oaSDPPerSecond
	ecfg.Limits.ICEPerSecond = oaICEPerSecond
	emu, err := kvsemu.Start(ctx, ecfg)
	if err != nil {
		return res, err
	}
	defer emu.Close()
	hc := emu.HTTPClient()
	defer hc.CloseIdleConnections()
	var arns [webPortPaths][]string
	for p := range arns {
		for i := range cfg.Channels {
			arn, err := emu.CreateChannel(fmt.Sprintf("webport-%d-%d", p, i), 60*time.Second)
			if err != nil {
				return res, err
			}
			arns[p] = append(arns[p], arn)
			cam, err := startFastCamera(emu, hc, arn, camera.CSample)
			if err != nil {
				return res, err
			}
			defer cam.stop()
		}
	}
	if err := mastersConnected(ctx, emu); err != nil {
		return res, fmt.Errorf("cameras: %w", err)
	}
	caFile, err := writeCA(dir, emu)
	if err != nil {
		return res, err
	}

	// Both servers start together, with default settings but for the
	// addresses, the credentials, the API keys and the one difference.
	webAddr, err := freeAddr()
	if err != nil {
		return res, err
	}
	type started struct {
		path int
		srv  *serverProc
		err  error
	}
	var servers [webPortPaths]*serverProc
	ch := make(chan started, 2)
	for _, p := range []int{pathWebOff, pathWebOn} {
		sdir := filepath.Join(dir, fmt.Sprintf("server-%d", p))
		if err := os.Mkdir(sdir, 0o700); err != nil {
			return res, err
		}
		var args []string
		if p == pathWebOn {
			args = []string{"-web-addr", webAddr}
		}
		go func() {
			srv, err := startServer(ctx, bin, sdir, emu, caFile, args...)
			ch <- started{p, srv, err}
		}()
	}
	var errs []error
	for range 2 {
		s := <-ch
		if s.err != nil {
			errs = append(errs, s.err)
			continue
		}
		servers[s.path] = s.srv
		defer s.srv.stop()
	}
	if len(errs) > 0 {
		return res, errors.Join(errs...)
	}
	off, on := servers[pathWebOff], servers[pathWebOn]
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\nweb-off server log (tail):\n%s\nweb-on server log (tail):\n%s", err, off.logTail(1500), on.logTail(1500))
		}
	}()
	if res.WebCheck, err = webHealth(ctx, webAddr); err != nil {
		return res, fmt.Errorf("web port of the on-server: %w", err)
	}

	// Enough connections for the default -max-concurrent-streams (100).
	var apis [webPortPaths][]vspb.ViewerSessionServiceClient
	for _, p := range []int{pathWebOff, pathWebOn} {
		for range cfg.Sessions/80 + 1 {
			cc, err := grpc.NewClient("passthrough:///"+servers[p].grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return res, err
			}
			defer cc.Close()
			apis[p] = append(apis[p], vspb.NewViewerSessionServiceClient(cc))
		}
	}

	offers, err := makeOffers(offerSlots)
	if err != nil {
		return res, err
	}
	var got [webPortPaths][]time.Duration
	cpuOff, cpuOn := off.cpu(), on.cpu()
	for r := range cfg.Rounds {
		samples, err := round(ctx, webPortPaths*cfg.Sessions, cfg.Spacing, func(ctx context.Context, k int, life time.Duration) (exchange, error) {
			i, p := k/webPortPaths, (k+r)%webPortPaths
			arn := arns[p][i%cfg.Channels]
			sdp := offers[(i/cfg.Channels)%len(offers)]
			var ex exchange
			var err error
			if p == pathDirect {
				ex, err = directExchange(ctx, emu, hc, life, arn, fmt.Sprintf("d%d-%d", r, i), sdp)
			} else {
				api := apis[p][i%len(apis[p])]
				req := &vspb.CreateSessionRequest{Channel: &vspb.Channel{Arn: arn}, ViewerId: fmt.Sprintf("w%d-%d-%d", p, r, i)}
				ex, err = appExchange(ctx, life, api, func(ctx context.Context) (*vspb.CreateSessionResponse, error) {
					return createRetrying(ctx, api, r*cfg.Sessions+i, req)
				}, sdp)
			}
			ex.path = p
			return ex, err
		})
		if err != nil {
			return res, fmt.Errorf("round %d: %w", r, err)
		}
		for _, s := range samples {
			got[s.path] = append(got[s.path], s.d)
		}
		if err := waitNoViewers(ctx, emu); err != nil {
			return res, err
		}
		logf("round %d of %d: %d samples; load %s", r+1, cfg.Rounds, len(samples), loadAvg())
	}
	res.OffCPU, res.OnCPU = off.cpu()-cpuOff, on.cpu()-cpuOn
	res.OffRSS, res.OnRSS = off.rss(), on.rss()
	res.LoadAvg = loadAvg()
	after, err := webHealth(ctx, webAddr)
	if err != nil {
		return res, fmt.Errorf("web port of the on-server after the rounds: %w", err)
	}
	res.WebCheck += "; after the rounds: " + after
	res.Direct, res.WebOff, res.WebOn = NewDist(got[pathDirect]), NewDist(got[pathWebOff]), NewDist(got[pathWebOn])
	return res, nil
}

// webHealth calls grpc.health.v1.Health/Check over the Connect protocol
// (HTTP/1.1, JSON) on a web port and returns the status it answered; an
// error unless it is 200 and SERVING.
func webHealth(ctx context.Context, addr string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/grpc.health.v1.Health/Check", strings.NewReader("{}"))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Connect-Protocol-Version", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", err
	}
	got := fmt.Sprintf("%s %s", resp.Status, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"SERVING"`) {
		return got, fmt.Errorf("health check over Connect: %s", got)
	}
	return got, nil
}

// waitNoViewers waits until no channel has a viewer connected at the
// emulator (closed sockets are noticed asynchronously).
func waitNoViewers(ctx context.Context, emu *kvsemu.Emulator) error {
	return pollUntil(ctx, 30*time.Second, func() bool {
		for _, ch := range emu.Channels() {
			if len(ch.Viewers) > 0 {
				return false
			}
		}
		return true
	})
}

// cpu is the server's CPU time so far, user + system (Linux), 0 if
// unknown.
func (s *serverProc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The fields after the command name (which may hold spaces): state is
	// the first, utime and stime the 12th and 13th, in clock ticks
	// (USER_HZ, 100 on Linux).
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b)[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	sy, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+sy) * 10 * time.Millisecond
}
