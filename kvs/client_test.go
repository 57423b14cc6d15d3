package kvs

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func TestNewConfig(t *testing.T) {
	creds := aws.AnonymousCredentials{}
	tests := []struct {
		name    string
		aws     aws.Config
		give    Config
		wantErr error
	}{
		{name: "zero config", aws: aws.Config{Credentials: creds}, give: Config{}},
		{name: "no credentials", aws: aws.Config{}, give: Config{}, wantErr: ErrInvalidArgument},
		{name: "bad backoff", aws: aws.Config{Credentials: creds}, give: Config{Backoff: Backoff{Base: time.Second, Max: time.Millisecond}}, wantErr: ErrInvalidArgument},
		{name: "bad expiry", aws: aws.Config{Credentials: creds}, give: Config{PresignExpiry: 8 * 24 * time.Hour}, wantErr: ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.aws, tt.give)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("New error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			defer c.closeIdleConnections()
			if got, want := c.cfg.Backoff, DefaultConfig().Backoff; got != want {
				t.Errorf("defaulted Backoff = %+v, want %+v", got, want)
			}
			if c.cfg.Region != "us-west-2" || c.cfg.PresignExpiry != 299*time.Second || c.cfg.ICERefreshBefore != 30*time.Second {
				t.Errorf("defaulted config = %+v, want DefaultConfig's values", c.cfg)
			}
		})
	}
}

func TestResolveChannel(t *testing.T) {
	f := newFakeKVS(t)
	tests := []struct {
		name string
		give ChannelRef
		want error
	}{
		{name: "by name", give: ChannelRef{Name: "front-door"}},
		{name: "by name and region", give: ChannelRef{Name: "front-door", Region: "us-west-2"}},
		{name: "by ARN", give: ChannelRef{ARN: f.arn}},
		{name: "unknown name", give: ChannelRef{Name: "nope"}, want: ErrNotFound},
		{name: "unknown ARN", give: ChannelRef{ARN: "arn:aws:kinesisvideo:us-west-2:123456789012:channel/nope/1"}, want: ErrNotFound},
		{name: "malformed ARN", give: ChannelRef{ARN: "arn:nope"}, want: ErrInvalidArgument},
		{name: "bad name", give: ChannelRef{Name: "a b"}, want: ErrInvalidArgument},
		{name: "nothing", give: ChannelRef{}, want: ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, testConfig(f))
			got, err := c.ResolveChannel(t.Context(), tt.give)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ResolveChannel(%+v) error = %v, want %v", tt.give, err, tt.want)
			}
			if errors.Is(err, ErrNotFound) {
				// A papercut of the operators issue: CHANNEL_NOT_FOUND
				// named neither the channel nor the region.
				name := tt.give.Name
				if tt.give.ARN != "" {
					name = tt.give.ARN
				}
				if !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "region us-west-2") {
					t.Errorf("ResolveChannel(%+v) error %q names neither the channel nor its region", tt.give, err)
				}
			}
			if err != nil {
				return
			}
			want := Channel{ARN: f.arn, Name: "front-door", Region: "us-west-2", MessageTTL: 90 * time.Second, WSSEndpoint: f.wsURL, HTTPSEndpoint: f.srv.URL}
			if got != want {
				t.Errorf("ResolveChannel(%+v) = %+v, want %+v", tt.give, got, want)
			}
		})
	}
}

// TestResolveChannelCaches checks the per-channel cache, the coalescing of
// concurrent misses, and Invalidate.
func TestResolveChannelCaches(t *testing.T) {
	f := newFakeKVS(t)
	c := newTestClient(t, testConfig(f))
	const n = 50
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := c.ResolveChannel(t.Context(), ChannelRef{ARN: f.arn}); err != nil {
				t.Errorf("ResolveChannel: %v", err)
			}
		})
	}
	wg.Wait()
	if got := f.count("GetSignalingChannelEndpoint"); got != 1 {
		t.Errorf("GetSignalingChannelEndpoint calls after %d lookups = %d, want 1", n, got)
	}
	if got := f.count("DescribeSignalingChannel"); got != 1 {
		t.Errorf("DescribeSignalingChannel calls = %d, want 1", got)
	}
	// The name is another key, but the describe answer's ARN is cached too.
	if _, err := c.ResolveChannel(t.Context(), ChannelRef{Name: "front-door"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ResolveChannel(t.Context(), ChannelRef{Name: "front-door"}); err != nil {
		t.Fatal(err)
	}
	if got := f.count("DescribeSignalingChannel"); got != 2 {
		t.Errorf("DescribeSignalingChannel calls after a name lookup = %d, want 2", got)
	}
	c.Invalidate(f.arn)
	if _, err := c.ResolveChannel(t.Context(), ChannelRef{Name: "front-door"}); err != nil {
		t.Fatal(err)
	}
	if got := f.count("GetSignalingChannelEndpoint"); got != 3 {
		t.Errorf("GetSignalingChannelEndpoint calls after Invalidate = %d, want 3", got)
	}
}

func TestResolveChannelThrottled(t *testing.T) {
	tests := []struct {
		name      string
		throttle  int
		wantErr   error
		wantCalls int
	}{
		{name: "recovers", throttle: 3, wantCalls: 4},
		{name: "gives up", throttle: 10, wantErr: ErrThrottled, wantCalls: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeKVS(t)
			f.set(func(f *fakeKVS) { f.throttle["GetSignalingChannelEndpoint"] = tt.throttle })
			c := newTestClient(t, testConfig(f))
			_, err := c.ResolveChannel(t.Context(), ChannelRef{ARN: f.arn})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ResolveChannel error = %v, want %v", err, tt.wantErr)
			}
			if got := f.count("GetSignalingChannelEndpoint"); got != tt.wantCalls {
				t.Errorf("GetSignalingChannelEndpoint calls = %d, want %d", got, tt.wantCalls)
			}
			var ae *APIError
			if err != nil && (!errors.As(err, &ae) || ae.Code != "ClientLimitExceededException" || ae.HTTPStatus != 400) {
				t.Errorf("ResolveChannel error = %#v, want an APIError ClientLimitExceededException 400", err)
			}
		})
	}
}

func TestIceServers(t *testing.T) {
	f := newFakeKVS(t)
	c := newTestClient(t, testConfig(f))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var clock sync.Mutex
	c.now = func() time.Time { clock.Lock(); defer clock.Unlock(); return now }
	advance := func(d time.Duration) { clock.Lock(); now = now.Add(d); clock.Unlock() }

	const n = 50
	results := make(chan IceServers, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			s, err := c.IceServers(t.Context(), f.channel(), "viewer-1")
			if err != nil {
				t.Errorf("IceServers: %v", err)
			}
			results <- s
		})
	}
	wg.Wait()
	close(results)
	if got := f.count("GetIceServerConfig"); got != 1 {
		t.Errorf("GetIceServerConfig calls after %d lookups = %d, want 1", n, got)
	}
	s := <-results
	want := []IceServer{
		{URLs: []string{"turn:127.0.0.1:3478?transport=udp", "turns:127.0.0.1:443?transport=tcp"}, Username: "1:user", Credential: "pw/+1"},
		{URLs: []string{"turn:127.0.0.2:3478"}, Username: "u2", Credential: "pw2"},
		{URLs: []string{"stun:stun.kinesisvideo.us-west-2.amazonaws.com:443"}},
	}
	if len(s.Servers) != len(want) {
		t.Fatalf("servers = %v, want %v", s.Servers, want)
	}
	for i := range want {
		g, w := s.Servers[i], want[i]
		if strings.Join(g.URLs, ",") != strings.Join(w.URLs, ",") || g.Username != w.Username || g.Credential != w.Credential {
			t.Errorf("server %d = %v (cred %q), want %v (cred %q)", i, g, g.Credential, w, w.Credential)
		}
	}
	if want := now.Add(300 * time.Second); !s.Expires.Equal(want) {
		t.Errorf("Expires = %v, want %v (fetch + smallest Ttl)", s.Expires, want)
	}

	advance(269 * time.Second) // 31 s before expiry: still fresh
	if _, err := c.IceServers(t.Context(), f.channel(), "viewer-2"); err != nil {
		t.Fatal(err)
	}
	if got := f.count("GetIceServerConfig"); got != 1 {
		t.Errorf("GetIceServerConfig calls at Ttl-31s = %d, want 1", got)
	}
	advance(time.Second) // Ttl - 30 s: stale
	s2, err := c.IceServers(t.Context(), f.channel(), "viewer-2")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.count("GetIceServerConfig"); got != 2 {
		t.Errorf("GetIceServerConfig calls at Ttl-30s = %d, want 2", got)
	}
	if s2.Servers[0].Credential == s.Servers[0].Credential {
		t.Errorf("credential after refetch = %q, want a new one", s2.Servers[0].Credential)
	}
	if _, err := c.RefreshIceServers(t.Context(), f.channel(), "viewer-2"); err != nil {
		t.Fatal(err)
	}
	if got := f.count("GetIceServerConfig"); got != 3 {
		t.Errorf("GetIceServerConfig calls after RefreshIceServers = %d, want 3", got)
	}
}

func TestIceServersErrors(t *testing.T) {
	f := newFakeKVS(t)
	tests := []struct {
		name     string
		throttle int
		ch       Channel
		clientID string
		want     error
		calls    int
	}{
		{name: "throttled then ok", throttle: 2, ch: f.channel(), clientID: "v", calls: 3},
		{name: "throttled throughout", throttle: 10, ch: f.channel(), clientID: "v", want: ErrThrottled, calls: 4},
		{name: "unknown channel", ch: Channel{ARN: "arn:aws:kinesisvideo:us-west-2:1:channel/x/1", Region: "us-west-2", HTTPSEndpoint: f.srv.URL}, clientID: "v", want: ErrNotFound, calls: 1},
		{name: "unresolved channel", ch: Channel{ARN: f.arn}, clientID: "v", want: ErrInvalidArgument},
		{name: "bad client id", ch: f.channel(), clientID: "no spaces", want: ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.set(func(f *fakeKVS) { f.throttle["GetIceServerConfig"], f.calls["GetIceServerConfig"] = tt.throttle, 0 })
			c := newTestClient(t, testConfig(f))
			_, err := c.IceServers(t.Context(), tt.ch, tt.clientID)
			if !errors.Is(err, tt.want) {
				t.Errorf("IceServers error = %v, want %v", err, tt.want)
			}
			if got := f.count("GetIceServerConfig"); got != tt.calls {
				t.Errorf("GetIceServerConfig calls = %d, want %d", got, tt.calls)
			}
		})
	}
}

// TestSecretsNotLogged runs a session with debug logging and checks that no
// AWS secret, session token or TURN password reaches the log.
func TestSecretsNotLogged(t *testing.T) {
	f := newFakeKVS(t)
	var buf bytes.Buffer
	var mu sync.Mutex
	cfg := testConfig(f)
	cfg.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := newTestClient(t, cfg)
	ch, err := c.ResolveChannel(t.Context(), ChannelRef{Name: "front-door"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.IceServers(t.Context(), ch, "viewer-1")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger.Info("servers", "ice", s.Servers[0], "set", s)
	cn, err := c.Dial(t.Context(), ch, "viewer-1")
	if err != nil {
		t.Fatal(err)
	}
	sock := f.next(t)
	sock.send(t, `{"messageType":"RECONNECT_ICE_SERVER"}`)
	nextEvent(t, cn)
	_ = cn.Close()
	mu.Lock()
	defer mu.Unlock()
	for _, secret := range []string{"test-secret-key", "pw/+", "pw2", "X-Amz-Signature"} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("log contains %q:\n%s", secret, buf.String())
		}
	}
	if !strings.Contains(buf.String(), "kvs ice servers refreshed") {
		t.Errorf("log lacks the refresh line (is the test logging at all?):\n%s", buf.String())
	}
	for _, v := range []string{fmt.Sprint(s.Servers[0]), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s.Servers[0])} {
		if strings.Contains(v, "pw/+") {
			t.Errorf("formatted IceServer %q shows the credential", v)
		}
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
