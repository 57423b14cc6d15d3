package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/acme/viewersession/clientid"
	"github.com/acme/viewersession/internal/assemble"
	"github.com/acme/viewersession/kvs"
	"github.com/acme/viewersession/kvsemu"
	"github.com/acme/viewersession/kvsemu/camera"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/service"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/bind"
)

// apiKey is the backend API key of every Stack.
const apiKey = "bench-api-key-0123456789abcdef"

// CameraKind selects the cameras a Stack puts on its channels.
type CameraKind int

const (
	// CameraNone: channels without a master (the figures that never offer).
	CameraNone CameraKind = iota
	// CameraFast: a package camera per channel run by the Stack, with short
	// ICE timeouts and cleanup so that the peer connections of viewers that
	// never complete ICE die within a fraction of a second, and a session
	// cap of 1,000 so they never block the next round. For signaling-only
	// load (the emulator's MaxViewers still holds at 10 per channel).
	CameraFast
	// CameraEmulator: the emulator's own camera (StartCamera) with its
	// defaults, as the end-to-end tests use it; faults apply.
	CameraEmulator
)

// StackConfig configures a Stack. Zero fields take the defaults shown.
type StackConfig struct {
	// Channels is the number of signaling channels. Default 1.
	Channels int
	// Camera and CameraMode choose the channels' cameras. Default
	// CameraNone; CameraMode c-sample.
	Camera     CameraKind
	CameraMode camera.Mode
	// MessageTTL is every channel's MessageTtlSeconds. Default 60s.
	MessageTTL time.Duration
	// Emulator, KVS and Manager edit the emulator's, the kvs client's and
	// the session manager's configurations, which start from their
	// defaults (the emulator on 127.0.0.1:0).
	Emulator func(*kvsemu.Config)
	KVS      func(*kvs.Config)
	Manager  func(*sessionmgr.Config)
	// IDs edits the clientId allocator's configuration.
	IDs func(*clientid.Config)
	// Store and Allocator replace the in-memory session store and clientId
	// allocator (the Redis figures). The Stack does not close them.
	Store     sessionmgr.Store
	Allocator func(clientid.Config) bind.Allocator
	// Conns is the number of gRPC client connections the apps and the
	// backend share, round robin. Default 1.
	Conns int
}

// Stack is the whole service in one process on loopback: the KVS emulator
// and its cameras, the kvs client, the clientId allocator, the store, the
// manager with its metrics, and the gRPC server with the production
// interceptors. Create it with StartStack and stop it with Close.
type Stack struct {
	Emu      *kvsemu.Emulator
	ARNs     []string
	KVS      *kvs.Client
	Manager  *sessionmgr.Manager
	Registry *prometheus.Registry

	parts   *assemble.Parts
	hc      *http.Client
	conns   []*grpc.ClientConn
	clients []vspb.ViewerSessionServiceClient
	gs      *grpc.Server
	served  chan struct{}
	cams    []*fastCamera

	// mu guards next.
	mu   sync.Mutex
	next int
}

// StartStack starts a Stack; ctx bounds the start only.
func StartStack(ctx context.Context, cfg StackConfig) (_ *Stack, err error) {
	if cfg.Channels <= 0 {
		cfg.Channels = 1
	}
	if cfg.MessageTTL <= 0 {
		cfg.MessageTTL = 60 * time.Second
	}
	if cfg.CameraMode == "" {
		cfg.CameraMode = camera.CSample
	}
	if cfg.Conns <= 0 {
		cfg.Conns = 1
	}
	// Production-like logging: JSON at Info, formatted and then discarded.
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))

	s := &Stack{served: make(chan struct{})}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	ecfg := kvsemu.DefaultConfig()
	ecfg.Addr = "127.0.0.1:0"
	if cfg.Emulator != nil {
		cfg.Emulator(&ecfg)
	}
	emu, err := kvsemu.Start(ctx, ecfg)
	if err != nil {
		return nil, fmt.Errorf("start emulator: %w", err)
	}
	s.Emu = emu
	s.hc = emu.HTTPClient()
	prefix := "bench-" + strings.ToLower(rand.Text()[:6])
	for i := range cfg.Channels {
		arn, err := emu.CreateChannel(fmt.Sprintf("%s-%d", prefix, i), cfg.MessageTTL)
		if err != nil {
			return nil, fmt.Errorf("create channel: %w", err)
		}
		s.ARNs = append(s.ARNs, arn)
	}
	if err := s.startCameras(ctx, cfg); err != nil {
		return nil, err
	}

	// The server's assembly (internal/assemble), with what the figures
	// change: the configurations StackConfig edits, a store and allocator
	// of their own, and limits no single API key reaches.
	reg := prometheus.NewRegistry()
	s.Registry = reg
	creds := emu.Credentials()
	ac := assemble.Config{
		Logger:     log,
		Registerer: reg,
		AWS: aws.Config{
			Region:      emu.Region(),
			Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, ""),
		},
		KVS:     kvs.DefaultConfig(),
		Manager: sessionmgr.DefaultConfig(),
		IDs:     clientid.DefaultConfig(),
		Store:   cfg.Store,
		APIKeys: []string{apiKey},
	}
	ac.KVS.Region, ac.KVS.Endpoint, ac.KVS.CAPool = emu.Region(), emu.Endpoint(), emu.CertPool()
	if cfg.KVS != nil {
		cfg.KVS(&ac.KVS)
	}
	if cfg.IDs != nil {
		cfg.IDs(&ac.IDs)
	}
	if cfg.Allocator != nil {
		ac.Allocator = cfg.Allocator(ac.IDs)
	}
	if cfg.Manager != nil {
		cfg.Manager(&ac.Manager)
	}
	// The figures measure the service's work, not its per-caller limits:
	// one API key makes thousands of creates a second here.
	limits := service.DefaultLimits()
	limits.CreatesPerSecond, limits.CreateBurst = 1e9, 1<<30
	limits.StreamsPerAPIKey = 1 << 30
	ac.Limits = &limits
	if s.parts, err = assemble.Build(ctx, ac); err != nil {
		return nil, err
	}
	s.KVS, s.Manager = s.parts.KVS, s.parts.Manager

	mw := service.NewInterceptors(log, reg)
	s.gs = grpc.NewServer(grpc.ChainUnaryInterceptor(mw.Unary()...), grpc.ChainStreamInterceptor(mw.Stream()...))
	vspb.RegisterViewerSessionServiceServer(s.gs, s.parts.Server)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		close(s.served)
		return nil, err
	}
	go func() {
		defer close(s.served)
		_ = s.gs.Serve(lis)
	}()
	for range cfg.Conns {
		cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		s.conns = append(s.conns, cc)
		s.clients = append(s.clients, vspb.NewViewerSessionServiceClient(cc))
	}
	return s, nil
}

// startCameras puts the configured cameras on every channel and waits until
// each is connected as the channel's master.
func (s *Stack) startCameras(ctx context.Context, cfg StackConfig) error {
	switch cfg.Camera {
	case CameraNone:
		return nil
	case CameraEmulator:
		for _, arn := range s.ARNs {
			if err := s.Emu.StartCamera(arn, cfg.CameraMode); err != nil {
				return fmt.Errorf("start camera: %w", err)
			}
		}
	case CameraFast:
		for _, arn := range s.ARNs {
			c, err := startFastCamera(s.Emu, s.hc, arn, cfg.CameraMode)
			if err != nil {
				return err
			}
			s.cams = append(s.cams, c)
		}
	}
	return mastersConnected(ctx, s.Emu)
}

// mastersConnected waits until every channel of emu has its master
// connected.
func mastersConnected(ctx context.Context, emu *kvsemu.Emulator) error {
	return pollUntil(ctx, 20*time.Second, func() bool {
		for _, ch := range emu.Channels() {
			if !ch.MasterConnected {
				return false
			}
		}
		return true
	})
}

// Close stops everything the Stack started, the manager first (its sessions
// close and release their clientIds; assemble.Parts.Close), then the gRPC
// server and clients, the cameras and the emulator.
func (s *Stack) Close() error {
	var errs []error
	if s.parts != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		errs = append(errs, s.parts.Close(ctx))
		cancel()
	}
	for _, cc := range s.conns {
		errs = append(errs, cc.Close())
	}
	if s.gs != nil {
		s.gs.Stop()
		<-s.served
	}
	for _, c := range s.cams {
		c.stop()
	}
	if s.hc != nil {
		s.hc.CloseIdleConnections()
	}
	if s.Emu != nil {
		errs = append(errs, s.Emu.Close())
	}
	return errors.Join(errs...)
}

// client returns the next gRPC client, round robin over the connections.
func (s *Stack) client() vspb.ViewerSessionServiceClient {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[s.next%len(s.clients)]
	s.next++
	return c
}

// backend adds the backend API key to ctx.
func backend(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+apiKey)
}

// withToken adds a session token to ctx.
func withToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// Create creates a session for viewer on channel ch (an index of ARNs).
func (s *Stack) Create(ctx context.Context, ch int, viewer string, opts *vspb.SessionOptions) (*vspb.CreateSessionResponse, error) {
	return s.CreateOn(ctx, s.ARNs[ch], viewer, opts)
}

// CreateOn creates a session for viewer on the channel arn.
func (s *Stack) CreateOn(ctx context.Context, arn, viewer string, opts *vspb.SessionOptions) (*vspb.CreateSessionResponse, error) {
	return s.client().CreateSession(backend(ctx), &vspb.CreateSessionRequest{
		Channel: &vspb.Channel{Arn: arn}, ViewerId: viewer, Options: opts,
	})
}

// Warm resolves every channel and fetches its ICE servers through the
// service's kvs client, so that the caches are as a running replica's
// are. workers bounds the concurrency.
func (s *Stack) Warm(ctx context.Context, workers int) error {
	return forEach(ctx, len(s.ARNs), workers, func(ctx context.Context, i int) error {
		ch, err := s.KVS.ResolveChannel(ctx, kvs.ChannelRef{ARN: s.ARNs[i]})
		if err != nil {
			return err
		}
		_, err = s.KVS.IceServers(ctx, ch, "warm")
		return err
	})
}

// WaitNoViewers waits until no channel has a viewer connected at the
// emulator (closed sockets are noticed asynchronously).
func (s *Stack) WaitNoViewers(ctx context.Context) error {
	return pollUntil(ctx, 30*time.Second, func() bool {
		for _, ch := range s.Emu.Channels() {
			if len(ch.Viewers) > 0 {
				return false
			}
		}
		return true
	})
}

// pollUntil polls cond every 20ms until it holds, ctx ends or limit
// passes: only for waiting on another component's asynchronous work (the
// emulator noticing a socket), never as synchronisation within one.
func pollUntil(ctx context.Context, limit time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("condition not met within %v: %w", limit, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// forEach runs fn(i) for i in [0, n) on at most workers goroutines and
// returns the first error; the others are cancelled.
func forEach(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	if workers <= 0 || workers > n {
		workers = n
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idx := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range idx {
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case idx <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(idx)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}
