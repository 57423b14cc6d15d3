package servinglog

import (
	"bytes"
	"log/slog"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The lines are written by slog's own handlers, as the server writes them
// (cmd/server/main.go), in both of its log formats; cmd/server's process
// tests read every server they start this way.
func TestFind(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		for _, web := range []string{"", "127.0.0.1:8081"} {
			var out bytes.Buffer
			var h slog.Handler = slog.NewJSONHandler(&out, nil)
			if format == "text" {
				h = slog.NewTextHandler(&out, nil)
			}
			log := slog.New(h)
			log.Info("startup check ok: redis", "check", "redis", "grpc_addr", "not this one")
			log.Info("serving Go profiles under /debug/pprof/ on the HTTP port", "http_addr", "127.0.0.1:1")
			log.Info("serving", "version", "dev", "grpc_addr", "127.0.0.1:40001", "http_addr", "127.0.0.1:40002", "web_addr", web,
				"store", "memory", "dev", true, "tls", false, "mtls", false)
			log.Info("serving", "grpc_addr", "127.0.0.1:9", "http_addr", "127.0.0.1:9")

			got, ok := Find(out.Bytes())
			want := Addrs{GRPC: "127.0.0.1:40001", HTTP: "127.0.0.1:40002", Web: web}
			if !ok || got != want {
				t.Errorf("%s, web %q: Find = %+v, %v; want %+v, true\n%s", format, web, got, ok, want, out.String())
			}
		}
	}
}

func TestFindNone(t *testing.T) {
	for _, log := range []string{
		"",
		"server: listen grpc: listen tcp 127.0.0.1:35883: bind: address already in use\n",
		`{"level":"INFO","msg":"garbage collector target","gc_percent":100}` + "\n",
		"time=x level=INFO msg=\"serving Go profiles\" http_addr=127.0.0.1:1\n",
		`{"msg":"serving"` + "\n", // cut short: the server is still writing it
	} {
		if a, ok := Find([]byte(log)); ok {
			t.Errorf("Find(%q) = %+v, true; want false", log, a)
		}
	}
}
