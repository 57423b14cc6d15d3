package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/acme/viewersession/internal/redistest"
)

// BenchmarkOfferAnswer: figure (a) at small concurrencies.
func BenchmarkOfferAnswer(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			var last OfferAnswerResult
			for b.Loop() {
				res, err := OfferAnswer(b.Context(), OfferAnswerConfig{Sessions: n, Rounds: max(1, 30/n)})
				if err != nil {
					b.Fatal(err)
				}
				last = res
			}
			reportOA(b, last)
		})
	}
}

func reportOA(b *testing.B, r OfferAnswerResult) {
	b.Helper()
	msf := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(msf(r.Direct.P50()), "direct-p50-ms")
	b.ReportMetric(msf(r.Direct.P99()), "direct-p99-ms")
	b.ReportMetric(msf(r.Service.P50()), "service-p50-ms")
	b.ReportMetric(msf(r.Service.P99()), "service-p99-ms")
	b.ReportMetric(msf(r.Service.P50()-r.Direct.P50()), "added-p50-ms")
	b.ReportMetric(msf(r.Service.P99()-r.Direct.P99()), "added-p99-ms")
	b.ReportMetric(msf(r.ServiceHops.P50()-r.DirectHops.P50()), "added-outside-camera-p50-ms")
	b.Logf("direct %v; service %v; direct hops %v; service hops %v", r.Direct, r.Service, r.DirectHops, r.ServiceHops)
}

// BenchmarkMemoryPerSession: figure (c) at 1,000 PENDING sessions.
func BenchmarkMemoryPerSession(b *testing.B) {
	var last MemoryResult
	for b.Loop() {
		res, err := Memory(b.Context(), MemoryConfig{Steps: []int{1000}})
		if err != nil {
			b.Fatal(err)
		}
		last = res
	}
	s := last.Steps[len(last.Steps)-1]
	b.ReportMetric(float64(s.PerSession.HeapInuse), "heap-B/session")
	b.ReportMetric(float64(s.PerSession.RSS), "rss-B/session")
	b.Logf("%+v", last)
}

// BenchmarkCreateSessionRedis: figure (b), CreateSession/s on Redis against
// SET NX at the same concurrency.
func BenchmarkCreateSessionRedis(b *testing.B) {
	url := redistest.Start(b).URL() // private: commandstats count only this run
	var last CreateRateResult
	for b.Loop() {
		res, err := CreateRate(b.Context(), CreateRateConfig{RedisURL: url, Concurrency: 16, Count: 500, Runs: 2})
		if err != nil {
			b.Fatal(err)
		}
		last = res
	}
	b.ReportMetric(last.CreatePerSecond, "creates/s")
	b.ReportMetric(last.SetNXPerSecond, "setnx/s")
	b.ReportMetric(last.CreatePerSecond/last.SetNXPerSecond, "ratio")
	b.ReportMetric(last.RoundTripsPerCreate, "redis-trips/create")
	b.Logf("create %v; set nx %v", last.CreateLatency, last.SetNXLatency)
}

// BenchmarkControlPlaneCalls: figure (d), 100 sessions on one channel over
// a simulated 10 minutes, 60 times faster.
func BenchmarkControlPlaneCalls(b *testing.B) {
	var last ControlPlaneResult
	for b.Loop() {
		res, err := ControlPlane(b.Context(), ControlPlaneConfig{Speedup: 60})
		if err != nil {
			b.Fatal(err)
		}
		last = res
	}
	n := float64(last.Config.Sessions)
	b.ReportMetric(float64(last.Calls["GetSignalingChannelEndpoint"]), "endpoint-calls/channel")
	b.ReportMetric(float64(last.Calls["GetIceServerConfig"]), "ice-calls/channel")
	b.ReportMetric(float64(last.Calls["GetIceServerConfig"])/n, "ice-calls/viewer")
	b.Logf("%+v", last)
}

// BenchmarkRetryTimer: figure (f) with a 1s answer timeout and a 400ms
// retry delay, 20 sessions, one per channel.
func BenchmarkRetryTimer(b *testing.B) {
	var last TimerResult
	for b.Loop() {
		res, err := TimerAccuracy(b.Context(), TimerConfig{Sessions: 20, AnswerTimeout: time.Second, RetryDelay: 400 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		last = res
	}
	msf := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(msf(last.RetryError.P50()), "err-p50-ms")
	b.ReportMetric(msf(last.RetryError.P99()), "err-p99-ms")
	b.ReportMetric(msf(last.RetryError.Max()), "err-max-ms")
	b.Logf("retry error %v (%d late); FAILED error %v", last.RetryError, last.Late, last.FailError)
}

// BenchmarkRecovery: figure (e), one run of each path.
func BenchmarkRecovery(b *testing.B) {
	for _, p := range RecoveryPaths()[:2] {
		b.Run(p.Name, func(b *testing.B) {
			var last RecoveryResult
			for b.Loop() {
				res, err := Recovery(b.Context(), p, 1)
				if err != nil {
					b.Fatal(err)
				}
				last = res
			}
			msf := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(msf(last.Timeline.P50()), "timeline-p50-ms")
			b.ReportMetric(msf(last.Media.P50()), "media-p50-ms")
			b.Logf("timeline %v; recovered seen %v; media %v", last.Timeline, last.Recovered, last.Media)
		})
	}
}
