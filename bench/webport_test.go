package bench

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestWebPort runs the web-port figure end to end at its smallest (one
// session per path, three rounds) on the real server binary: every path
// must yield a sample per round, and the on-server's web port must have
// answered a Connect health check before and after the rounds.
// VS_SERVER_BIN runs it against another build of the server.
func TestWebPort(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	bin := serverBin(ctx, t)
	res, err := WebPort(ctx, WebPortConfig{ServerBin: bin, Sessions: 1, Rounds: 3, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		name string
		d    Dist
	}{{"direct", res.Direct}, {"web off", res.WebOff}, {"web on", res.WebOn}} {
		if len(p.d) != 3 || p.d.Q(0) <= 0 {
			t.Errorf("%s: %d samples, smallest %v; want 3, all positive", p.name, len(p.d), p.d.Q(0))
		}
	}
	if n := strings.Count(res.WebCheck, `"SERVING"`); n != 2 {
		t.Errorf("web port answers %q: want SERVING before and after the rounds", res.WebCheck)
	}
	if res.OnRSS <= 0 || res.OffRSS <= 0 {
		t.Errorf("server RSS off %d, on %d: want both read (the processes were up)", res.OffRSS, res.OnRSS)
	}
}
