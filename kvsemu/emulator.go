package kvsemu

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/acme/viewersession/kvsemu/camera"
	"github.com/acme/viewersession/kvsemu/sigv4"
)

// signingService is the SigV4 service name of both KVS APIs.
const signingService = "kinesisvideo"

// Emulator is a running local KVS: control plane, signaling WSS, TURN,
// simulated cameras and the admin API. Create it with Start and stop it with
// Close. All methods are safe for concurrent use.
type Emulator struct {
	cfg      Config
	log      *slog.Logger
	ca       *authority
	host     string // "127.0.0.1:port", the host of every endpoint
	ln       net.Listener
	srv      *http.Server
	turn     *turnServer
	verifier sigv4.Verifier
	client   *http.Client // trusts ca; the cameras dial with it
	counters counters

	// spawn hands functions to the supervisor, which runs each in a
	// goroutine with the emulator's lifetime context.
	spawn  chan func(ctx context.Context)
	cancel context.CancelFunc
	wg     sync.WaitGroup
	served chan struct{} // closed when srv.Serve returns

	// camMu serialises StartCamera and StopCamera; it is taken before mu.
	camMu sync.Mutex

	// mu guards everything below.
	mu        sync.Mutex
	closed    bool
	seq       int64               // makes ARNs, versions and connection ids unique
	channels  map[string]*channel // by ARN
	byName    map[string]*channel
	throttles map[string]int
	cameras   map[string]*cameraRun // by ARN
	faults    map[string]camera.Fault
}

// Start creates the emulator's CA, starts TURN and listens on cfg.Addr. The
// emulator is serving when Start returns and runs until Close; ctx only
// bounds the start. A bad cfg yields an error wrapping ErrInvalidArgument
// that names every problem.
func Start(ctx context.Context, cfg Config) (*Emulator, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	turnAddr, _ := parseTURNAddr(cfg.TURNAddr) // validated
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	hostIP := addr.IP.String()
	if addr.IP.IsUnspecified() {
		hostIP = "127.0.0.1"
	}
	ca, err := newAuthority(hostIP, time.Now())
	if err != nil {
		ln.Close()
		return nil, err
	}
	turnSrv, err := startTURN(turnAddr, cfg.Now, cfg.Logger)
	if err != nil {
		ln.Close()
		return nil, err
	}
	e := &Emulator{
		cfg:  cfg,
		log:  cfg.Logger,
		ca:   ca,
		host: net.JoinHostPort(hostIP, strconv.Itoa(addr.Port)),
		ln:   ln,
		turn: turnSrv,
		verifier: sigv4.Verifier{
			Region:  cfg.Region,
			Service: signingService,
			Now:     cfg.Now,
			Lookup: func(id string) (string, bool) {
				return cfg.SecretAccessKey, id == cfg.AccessKeyID
			},
		},
		client: &http.Client{Transport: &http.Transport{
			TLSClientConfig:   ca.clientTLS(),
			ForceAttemptHTTP2: false,
			TLSNextProto:      map[string]func(string, *tls.Conn) http.RoundTripper{},
		}},
		counters:  newCounters(),
		spawn:     make(chan func(context.Context)),
		served:    make(chan struct{}),
		channels:  make(map[string]*channel),
		byName:    make(map[string]*channel),
		throttles: make(map[string]int),
		cameras:   make(map[string]*cameraRun),
		faults:    make(map[string]camera.Fault),
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.cancel = cancel
	e.srv = &http.Server{
		Handler:           e.routes(),
		TLSConfig:         ca.serverTLS(),
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return runCtx },
	}
	e.wg.Go(func() { e.supervise(runCtx) })
	go func() {
		defer close(e.served)
		if err := e.srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("kvsemu: serve", "err", err)
		}
	}()
	turnUDP, turnTCP := turnSrv.addrs()
	e.log.Info("kvsemu: listening", "endpoint", e.Endpoint(),
		"turn_udp", turnUDP, "turn_tcp", turnTCP, "camera_ip", cfg.CameraIP.String())
	return e, nil
}

// supervise runs spawned functions until ctx ends.
func (e *Emulator) supervise(ctx context.Context) {
	for {
		select {
		case f := <-e.spawn:
			e.wg.Go(func() { f(ctx) })
		case <-ctx.Done():
			return
		}
	}
}

// goWithLife runs f in a goroutine whose ctx ends when the emulator closes.
// It reports false if the emulator is closed.
func (e *Emulator) goWithLife(f func(ctx context.Context)) bool {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return false
	}
	select {
	case e.spawn <- f:
		return true
	case <-e.served:
		return false
	}
}

// Close stops serving, closes every signaling connection, stops the cameras
// and TURN, and waits for every goroutine the emulator started. It is
// idempotent.
func (e *Emulator) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()

	err := e.srv.Close() // listener and plain HTTP connections
	<-e.served
	e.cancel() // signaling connections, cameras, the supervisor
	e.wg.Wait()
	e.client.CloseIdleConnections()
	if terr := e.turn.close(); terr != nil && err == nil {
		err = terr
	}
	return err
}

// Endpoint is the control-plane endpoint, "https://127.0.0.1:<port>": use it
// as aws-sdk-go-v2's BaseEndpoint.
func (e *Emulator) Endpoint() string { return "https://" + e.host }

// WSSEndpoint is the signaling endpoint GetSignalingChannelEndpoint returns.
func (e *Emulator) WSSEndpoint() string { return "wss://" + e.host }

// AdminURL is the base of the admin API, "https://127.0.0.1:<port>/_emulator".
func (e *Emulator) AdminURL() string { return e.Endpoint() + adminPrefix }

// CACertPEM returns the PEM of the CA that signed the emulator's TLS
// certificate.
func (e *Emulator) CACertPEM() []byte { return append([]byte(nil), e.ca.caPEM...) }

// CertPool returns a pool that trusts the emulator's CA.
func (e *Emulator) CertPool() *x509.CertPool { return e.ca.pool.Clone() }

// HTTPClient returns a new HTTP/1.1 client that trusts the emulator's CA.
// Call CloseIdleConnections on it when done.
func (e *Emulator) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: e.ca.clientTLS()}}
}

// Region is the emulator's region.
func (e *Emulator) Region() string { return e.cfg.Region }

// Credentials returns the access key id and secret the emulator accepts.
func (e *Emulator) Credentials() sigv4.Credentials {
	return sigv4.Credentials{AccessKeyID: e.cfg.AccessKeyID, SecretAccessKey: e.cfg.SecretAccessKey}
}

// TURNAddrs returns the TURN server's UDP and TCP addresses.
func (e *Emulator) TURNAddrs() (udp, tcp string) { return e.turn.addrs() }

// CameraIP is the address the simulated cameras gather ICE candidates on.
func (e *Emulator) CameraIP() netip.Addr { return e.cfg.CameraIP }

// PresignViewerURL returns a signaling URL for a viewer with clientID on
// channelARN, presigned with the emulator's credentials (for tests and
// tools; a master URL if clientID is empty).
func (e *Emulator) PresignViewerURL(channelARN, clientID string) (string, error) {
	return e.presign(channelARN, clientID, 0)
}

func (e *Emulator) presign(channelARN, clientID string, expires time.Duration) (string, error) {
	u := e.WSSEndpoint() + "/?X-Amz-ChannelARN=" + url.QueryEscape(channelARN)
	if clientID != "" {
		u += "&X-Amz-ClientId=" + url.QueryEscape(clientID)
	}
	return sigv4.PresignURL(u, e.Credentials(), e.cfg.Region, signingService, e.cfg.Now(), expires)
}

func (e *Emulator) routes() http.Handler {
	mux := http.NewServeMux()
	for _, op := range controlOps() {
		mux.HandleFunc("POST "+op.path, e.controlPlane(op))
		mux.HandleFunc("OPTIONS "+op.path, preflight)
	}
	mux.HandleFunc("GET /{$}", e.serveSignaling)
	mux.HandleFunc("/", unknownOperation)
	e.adminRoutes(mux)
	return e.track(mux)
}

// track counts every request in wg so that Close waits for its handler,
// including hijacked signaling connections, which http.Server does not
// track.
func (e *Emulator) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			writeError(w, http.StatusServiceUnavailable, "ServiceUnavailableException", "The emulator is shutting down.")
			return
		}
		e.wg.Add(1)
		e.mu.Unlock()
		defer e.wg.Done()
		h.ServeHTTP(w, r)
	})
}
