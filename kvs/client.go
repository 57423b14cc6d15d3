package kvs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"golang.org/x/sync/singleflight"
)

// controlPlane is the part of the kinesisvideo client this package calls, with
// the SDK's exact method signatures.
type controlPlane interface {
	DescribeSignalingChannel(ctx context.Context, params *kinesisvideo.DescribeSignalingChannelInput, optFns ...func(*kinesisvideo.Options)) (*kinesisvideo.DescribeSignalingChannelOutput, error)
	GetSignalingChannelEndpoint(ctx context.Context, params *kinesisvideo.GetSignalingChannelEndpointInput, optFns ...func(*kinesisvideo.Options)) (*kinesisvideo.GetSignalingChannelEndpointOutput, error)
}

// Client resolves KVS signaling channels, fetches their ICE servers and dials
// their signaling WebSocket as a viewer. It caches endpoints and ICE servers
// per channel. A Client is safe for concurrent use; it starts no goroutines
// of its own, so it needs no Close (each Conn it dials must be closed).
type Client struct {
	cfg    Config
	log    *slog.Logger
	creds  aws.CredentialsProvider
	api    controlPlane
	http   *http.Client // REST calls and WebSocket handshakes, HTTP/1.1 only
	signer *v4.Signer
	now    func() time.Time

	flights singleflight.Group // keys "ch:<key>" and "ice:<arn>"

	// mu guards the caches below.
	mu       sync.Mutex
	channels map[string]Channel       // by channel key (see channelKey), also by ARN
	ttls     map[string]time.Duration // MessageTTL by ARN, from DescribeSignalingChannel
	ice      map[string]IceServers    // by channel ARN
}

// Option sets an optional seam of a Client.
type Option func(*Client)

// WithClock sets the clock of the ICE server cache: when servers were
// fetched and whether they are near expiry (default time.Now). Requests
// are signed at the real time whatever the clock (AWS refuses a skewed
// signature), and timers stay on the runtime's.
func WithClock(now func() time.Time) Option { return func(c *Client) { c.now = now } }

// New returns a Client that signs with awsCfg's credentials. awsCfg comes from
// config.LoadDefaultConfig (IRSA, environment, shared profile) or is built
// with credentials.NewStaticCredentialsProvider (the emulator). Credentials
// are cached (aws.CredentialsCache) unless they already are.
func New(awsCfg aws.Config, cfg Config, opts ...Option) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if awsCfg.Credentials == nil {
		return nil, fmt.Errorf("kvs: %w: aws.Config has no credentials", ErrInvalidArgument)
	}
	creds := awsCfg.Credentials
	if _, ok := creds.(*aws.CredentialsCache); !ok {
		creds = aws.NewCredentialsCache(creds)
	}
	hc := newHTTPClient(cfg)
	api := kinesisvideo.NewFromConfig(awsCfg, func(o *kinesisvideo.Options) {
		o.Credentials = creds
		o.HTTPClient = hc
		o.Region = cfg.Region
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	c := &Client{
		cfg:      cfg,
		log:      cfg.Logger,
		creds:    creds,
		api:      api,
		http:     hc,
		signer:   v4.NewSigner(),
		now:      time.Now,
		channels: make(map[string]Channel),
		ttls:     make(map[string]time.Duration),
		ice:      make(map[string]IceServers),
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// newHTTPClient builds the one HTTP client of a Client: HTTP/1.1 (KVS's
// WebSocket endpoints need it, as the C SDK notes), the configured roots, a
// TLS session cache, and short connect timeouts. Each signaling socket is a
// TLS connection of its own; the cache lets it resume the session of an
// earlier one to the same endpoint (session tickets) instead of a full
// handshake.
func newHTTPClient(cfg Config) *http.Client {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	d := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	base := &tls.Config{
		RootCAs:            cfg.CAPool,
		MinVersion:         tls.VersionTLS12,
		ClientSessionCache: tls.NewLRUClientSessionCache(tlsSessions),
		NextProtos:         []string{"http/1.1"},
	}
	td := &tlsDialer{dialer: d, base: base, timeout: cfg.DialTimeout, byHost: make(map[string]*tls.Config)}
	tr := &http.Transport{
		Proxy:       http.ProxyFromEnvironment,
		DialContext: d.DialContext,
		// TLS to the endpoint (or to an https proxy); through an http
		// proxy's CONNECT the transport does it, with TLSClientConfig.
		DialTLSContext:        td.dial,
		TLSClientConfig:       base,
		TLSHandshakeTimeout:   cfg.DialTimeout,
		ResponseHeaderTimeout: 10 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   16,
		Protocols:             &protocols,
	}
	return &http.Client{Transport: tr}
}

// tlsDialer dials TLS connections with one tls.Config per host, shared by
// all of them. net/http would clone TLSClientConfig for every connection
// (to set its ServerName), and a connection keeps its config for its life:
// 1.3 KiB in every signaling socket.
type tlsDialer struct {
	dialer  *net.Dialer
	base    *tls.Config
	timeout time.Duration // bounds the handshake (the transport's TLSHandshakeTimeout does not apply)

	mu     sync.Mutex
	byHost map[string]*tls.Config
}

// maxTLSHosts bounds a tlsDialer's configs (a Client talks to a few
// endpoints: the control plane and each region's).
const maxTLSHosts = 64

func (t *tlsDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	raw, err := t.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if t.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.timeout)
		defer cancel()
	}
	tc := tls.Client(raw, t.config(host))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}

// config returns host's config: the base one with ServerName set.
func (t *tlsDialer) config(host string) *tls.Config {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.byHost[host]; ok {
		return c
	}
	if len(t.byHost) >= maxTLSHosts {
		clear(t.byHost)
	}
	c := t.base.Clone()
	c.ServerName = host
	t.byHost[host] = c
	return c
}

// tlsSessions is the size of a Client's TLS session cache: one session is
// kept per endpoint host (the control plane, each region's signaling and
// HTTPS endpoints), the most recent first.
const tlsSessions = 256

// closeIdleConnections drops pooled HTTP connections (tests use it before
// checking for leaked goroutines).
func (c *Client) closeIdleConnections() {
	c.http.CloseIdleConnections()
}

// credentials returns the current AWS credentials.
func (c *Client) credentials(ctx context.Context) (aws.Credentials, error) {
	creds, err := c.creds.Retrieve(ctx)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return aws.Credentials{}, ctxErr
		}
		return aws.Credentials{}, fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	return creds, nil
}

// coalesce runs fn once for all concurrent callers with the same key. Because
// the shared call runs with the first caller's ctx, a caller whose own ctx is
// still live tries again (a few times) when the shared call failed on a
// context error that was not its own.
func coalesce[T any](ctx context.Context, g *singleflight.Group, key string, fn func() (T, error)) (T, error) {
	for try := 0; ; try++ {
		v, err, shared := g.Do(key, func() (any, error) { return fn() })
		if err != nil && shared && try < 3 && ctx.Err() == nil &&
			(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			continue
		}
		if err != nil {
			var zero T
			return zero, err
		}
		return v.(T), nil
	}
}

// observe reports one call attempt to Config.Observe.
func (c *Client) observe(op string, err error) {
	if c.cfg.Observe != nil {
		c.cfg.Observe(op, Result(err))
	}
}

// Result names an error's class for metrics: ok, throttled, not_found,
// access_denied, invalid_argument, canceled or unavailable.
func Result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrThrottled):
		return "throttled"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrAccessDenied):
		return "access_denied"
	case errors.Is(err, ErrInvalidArgument):
		return "invalid_argument"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	}
	return "unavailable"
}
