package main

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestPprofOnlyWhenAsked: /debug/pprof/ is served with -pprof and is a 404
// without it (profiles cost CPU; the default port shows none).
func TestPprofOnlyWhenAsked(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	for _, on := range []bool{false, true} {
		mux := httpMux(prometheus.NewRegistry(), &ready, nil, on)
		for path, wantOn := range map[string]int{"/debug/pprof/": 200, "/debug/pprof/goroutine?debug=1": 200, "/metrics": 200} {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			want := wantOn
			if !on && path != "/metrics" {
				want = 404
			}
			if rec.Code != want {
				t.Errorf("pprof=%v: GET %s = %d, want %d", on, path, rec.Code, want)
			}
		}
	}
}
