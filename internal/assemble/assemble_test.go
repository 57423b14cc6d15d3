package assemble

import (
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/viewersession/clientid"
	"github.com/acme/viewersession/internal/redistest"
	"github.com/acme/viewersession/kvs"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/memstore"
	"github.com/acme/viewersession/sessionmgr/redisstore"
	"github.com/acme/viewersession/webhook"
)

// config is a Config whose KVS client is never called.
func config() Config {
	kcfg := kvs.DefaultConfig()
	kcfg.Region, kcfg.Endpoint = "us-west-2", "https://127.0.0.1:1"
	return Config{
		AWS:     aws.Config{Region: "us-west-2", Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "test", "")},
		KVS:     kcfg,
		Manager: sessionmgr.DefaultConfig(),
		IDs:     clientid.DefaultConfig(),
		APIKeys: []string{"k"},
	}
}

// TestBuildMemory: without Redis the state is in memory, with no cluster;
// Close is idempotent.
func TestBuildMemory(t *testing.T) {
	p, err := Build(t.Context(), config())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Store.(*memstore.Store); !ok {
		t.Errorf("Store = %T, want *memstore.Store", p.Store)
	}
	if p.Cluster != nil {
		t.Errorf("Cluster = %T, want nil in memory", p.Cluster)
	}
	if p.Manager == nil || p.Server == nil || p.Prober == nil || p.Metrics == nil || p.KVS == nil {
		t.Errorf("Parts = %+v, want every part", p)
	}
	if p.Auth.Keys() != 1 {
		t.Errorf("Auth.Keys() = %d, want 1", p.Auth.Keys())
	}
	if err := p.Close(t.Context()); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := p.Close(t.Context()); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestBuildRedis: with Redis the store, clientIds and cluster are on it,
// and Close closes the client last.
func TestBuildRedis(t *testing.T) {
	rdb, err := NewRedis("standalone", redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := config()
	cfg.Redis = rdb
	p, err := Build(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Store.(*redisstore.Store); !ok {
		t.Errorf("Store = %T, want *redisstore.Store", p.Store)
	}
	if p.Cluster == nil {
		t.Error("Cluster = nil, want the Redis cluster")
	}
	if err := rdb.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("Ping before Close = %v", err)
	}
	if err := p.Close(t.Context()); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := rdb.Ping(t.Context()).Err(); err == nil {
		t.Error("Ping after Close = nil, want the client closed")
	}
}

// TestNewRedisBadURL: a URL the mode cannot read is an error.
func TestNewRedisBadURL(t *testing.T) {
	for _, mode := range []string{"standalone", "sentinel", "cluster"} {
		if _, err := NewRedis(mode, "http://host:6379"); err == nil {
			t.Errorf("NewRedis(%q, http://...) = nil error, want one", mode)
		}
	}
}

// countingObserver counts the timeline events it is given.
type countingObserver struct {
	sessionmgr.Observer
	events *int
}

func (o countingObserver) SessionEvent(sessionmgr.SessionID, string, sessionmgr.Event) { *o.events++ }

// TestWebhooksObserver: with Webhooks, the sessions report to an observer
// that sends webhooks and still feeds the one it wraps (tracing keeps its
// events); the dispatcher is closed with the parts.
func TestWebhooksObserver(t *testing.T) {
	p := &Parts{}
	cfg := Config{}
	log, reg := slog.New(slog.DiscardHandler), prometheus.NewRegistry()
	var base sessionmgr.Observer = countingObserver{events: new(int)}
	if got := p.webhooks(cfg, log, reg, "r1", base, time.Now); got != base {
		t.Errorf("webhooks without Webhooks = %T, want the observer unchanged", got)
	}
	wcfg := webhook.DefaultConfig()
	wcfg.URLs, wcfg.Secret = []string{"http://127.0.0.1:1/hook"}, []byte("a-webhook-secret-of-32-bytes....")
	cfg.Webhooks = &wcfg
	n := new(int)
	obs := p.webhooks(cfg, log, reg, "r1", countingObserver{events: n}, time.Now)
	so, ok := obs.(sessionmgr.SessionObserver)
	if !ok {
		t.Fatalf("webhooks = %T, want a sessionmgr.SessionObserver", obs)
	}
	eo, ok := obs.(sessionmgr.EventObserver)
	if !ok {
		t.Fatalf("webhooks = %T, want a sessionmgr.EventObserver too (tracing)", obs)
	}
	eo.SessionEvent("s", "arn", sessionmgr.Event{Type: sessionmgr.EventOfferSent})
	so.SessionEventOf(sessionmgr.SessionRef{ID: "s"}, sessionmgr.Event{Type: sessionmgr.EventOfferSent})
	if *n != 1 {
		t.Errorf("the wrapped observer got %d events, want 1", *n)
	}
	if len(p.closers) != 1 {
		t.Fatalf("closers = %d, want the dispatcher's", len(p.closers))
	}
	if err := p.Close(t.Context()); err != nil {
		t.Errorf("close the dispatcher: %v", err)
	}
}
