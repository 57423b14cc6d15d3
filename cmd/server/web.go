package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"connectrpc.com/vanguard"
	"connectrpc.com/vanguard/vanguardgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// The headers browsers send and read on the web port: the Connect and
// gRPC-Web protocols' own, and Authorization for the session token.
var (
	corsAllowHeaders = []string{
		"Authorization", "Content-Type", "Connect-Protocol-Version", "Connect-Timeout-Ms",
		"Connect-Accept-Encoding", "Connect-Content-Encoding", "Grpc-Timeout", "Grpc-Accept-Encoding",
		"Grpc-Encoding", "X-Grpc-Web", "X-User-Agent",
	}
	corsExposeHeaders = []string{
		"Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin", "Connect-Content-Encoding",
		"Connect-Accept-Encoding", "Grpc-Encoding", "Grpc-Accept-Encoding",
	}
)

// corsMaxAge is how long a browser may cache a preflight.
const corsMaxAge = 2 * time.Hour

// parseOrigins splits -web-origins: comma-separated origins
// (scheme://host[:port]), or "*" for any.
func parseOrigins(s string) []string {
	var out []string
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, strings.TrimSuffix(o, "/"))
		}
	}
	return out
}

// cors answers preflights and marks responses for the allowed origins. A
// request from an origin not on the list gets no allow header (the browser
// then refuses the response) and a preflight from it gets 403. Requests
// without an Origin (same-origin pages, native clients) pass untouched.
func cors(origins []string, next http.Handler) http.Handler {
	anyOrigin := slices.Contains(origins, "*")
	allowHeaders := strings.Join(corsAllowHeaders, ", ")
	exposeHeaders := strings.Join(corsExposeHeaders, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		allowed := anyOrigin || slices.Contains(origins, origin)
		h := w.Header()
		h.Add("Vary", "Origin")
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if !allowed {
			if preflight {
				http.Error(w, "origin not allowed", http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		if preflight {
			h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", allowHeaders)
			h.Set("Access-Control-Max-Age", fmt.Sprint(int(corsMaxAge.Seconds())))
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", exposeHeaders)
		next.ServeHTTP(w, r)
	})
}

// webServer is the browsers' port: Connect and gRPC-Web (vanguard transcoding
// onto a grpc.Server of its own, so native gRPC keeps grpc-go's transport),
// over HTTP/1.1, h2c and HTTP/2 over TLS.
type webServer struct {
	gs   *grpc.Server
	http *http.Server
	lis  net.Listener
}

// newWebServer builds the web port on gs (a grpc.Server with the service,
// health and reflection registered). extra, when set, serves the paths that
// are not RPCs (the -dev demo page and its session endpoint).
func newWebServer(cfg Config, lis net.Listener, gs *grpc.Server, tlsCfg *tls.Config, extra http.Handler) (*webServer, error) {
	var opts []vanguard.TranscoderOption
	if extra != nil {
		opts = append(opts, vanguard.WithUnknownHandler(extra))
	}
	tc, err := vanguardgrpc.NewTranscoder(gs, opts...)
	if err != nil {
		return nil, fmt.Errorf("web port: %w", err)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           cors(parseOrigins(cfg.WebOrigins), tc),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		Protocols:         &protocols,
		// No WriteTimeout: WatchSession and Connect stream for hours.
	}
	if cfg.WebTLS {
		wtc := tlsCfg.Clone()
		wtc.ClientAuth, wtc.ClientCAs = tls.NoClientCert, nil // browsers present none
		wtc.NextProtos = []string{"h2", "http/1.1"}
		lis = tls.NewListener(lis, wtc)
	}
	return &webServer{gs: gs, http: srv, lis: lis}, nil
}

func (w *webServer) serve() error {
	if err := w.http.Serve(w.lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve web: %w", err)
	}
	return nil
}

// shutdown runs after the session manager drained (GOING_AWAY has reached
// the browser streams and they ended): it waits for what is left until ctx
// ends, then cuts it.
func (w *webServer) shutdown(ctx context.Context, log *slog.Logger) {
	if err := w.http.Shutdown(ctx); err != nil {
		log.Warn("web port: streams still open at the drain timeout; cutting them", "error", err)
		w.gs.Stop() // ends the RPCs: their streams get an error, not a reset
		_ = w.http.Close()
		return
	}
	w.gs.Stop()
}

// devSessionHandler mints a session for the -dev demo page with the dev API
// key: POST /dev/session {"channel":"demo-camera","viewer_id":"..."} ->
// {"name","token","ice_servers"}. -dev only: anyone who can reach the web
// port could create sessions with it.
func devSessionHandler(svc vspb.ViewerSessionServiceServer, devKey string) http.Handler {
	type request struct {
		Channel  string `json:"channel"`
		ViewerID string `json:"viewer_id"`
	}
	type iceServer struct {
		URLs       []string `json:"urls"`
		Username   string   `json:"username,omitempty"`
		Credential string   `json:"credential,omitempty"`
	}
	type response struct {
		Name       string      `json:"name"`
		Token      string      `json:"token"`
		IceServers []iceServer `json:"ice_servers"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
			http.Error(w, "want a JSON body {\"channel\":\"...\",\"viewer_id\":\"...\"}", http.StatusBadRequest)
			return
		}
		if req.Channel == "" {
			req.Channel = DemoChannel
		}
		ctx := metadata.NewIncomingContext(r.Context(), metadata.Pairs("authorization", "Bearer "+devKey))
		res, err := svc.CreateSession(ctx, &vspb.CreateSessionRequest{
			Channel:  &vspb.Channel{Name: req.Channel},
			ViewerId: req.ViewerID,
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out := response{Name: res.GetSession().GetName(), Token: res.GetSessionToken()}
		for _, s := range res.GetSession().GetIceServers() {
			out.IceServers = append(out.IceServers, iceServer{URLs: s.GetUrls(), Username: s.GetUsername(), Credential: s.GetCredential()})
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(out)
	})
}

// devWebMux serves the -dev extras of the web port: the demo page (assets,
// when built) at / and the session endpoint.
func devWebMux(assets fs.FS, sessions http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /dev/session", sessions)
	if assets != nil {
		mux.Handle("GET /", http.FileServerFS(assets))
	} else {
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintln(w, "the demo page is not built into this binary")
		})
	}
	return mux
}
