package handlers_test

import (
	"testing"
	"time"

	"github.com/smartcaddy/smartauth/handlers"
	"github.com/smartcaddy/smartauth/internal/metrics"
)

// BenchmarkGuardMetricsOverhead measures, in one run, the guard's cost
// for a cached token with metrics off and with metrics on (decision
// counter, latency histogram, cache hit counter, store timing), in
// alternating chunks so that both see the same machine load. It reports
// both costs and throughput_ratio: requests per second with metrics on
// over those with metrics off (1 = free; the goal is at least 0.97).
func BenchmarkGuardMetricsOverhead(b *testing.B) {
	set := metrics.New()
	off := newGuardBench(b)
	on := newGuardBench(b, func(c *handlers.Config) {
		c.Metrics = set
		c.Store = set.InstrumentStore(c.Store)
	})
	tokOff, tokOn := off.token(b), on.token(b)
	off.serve(b, tokOff)
	on.serve(b, tokOn)
	const chunk = 8
	var tOff, tOn time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += chunk {
		n := min(chunk, b.N-done)
		first, second := off, on
		firstTok, secondTok := tokOff, tokOn
		tFirst, tSecond := &tOff, &tOn
		if (done/chunk)%2 == 1 { // alternate which goes first
			first, second, firstTok, secondTok, tFirst, tSecond = on, off, tokOn, tokOff, &tOn, &tOff
		}
		start := time.Now()
		for range n {
			first.serve(b, firstTok)
		}
		mid := time.Now()
		for range n {
			second.serve(b, secondTok)
		}
		*tFirst += mid.Sub(start)
		*tSecond += time.Since(mid)
	}
	b.ReportMetric(float64(tOff.Nanoseconds())/float64(b.N), "off-ns/req")
	b.ReportMetric(float64(tOn.Nanoseconds())/float64(b.N), "on-ns/req")
	b.ReportMetric(float64(tOff)/float64(tOn), "throughput_ratio")
}
