package limiter

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/quotad/quotad/internal/clock"
)

// roomyConfig never makes a call wait: every Acquire is granted at once.
func roomyConfig() Config {
	return Config{Limits: []Limit{
		{Resource: Requests, Amount: 1_000_000_000, Period: time.Second, Initial: 1},
		{Resource: Tokens, Amount: 1_000_000_000_000, Period: time.Minute, Initial: 1},
	}}
}

var benchReq = Request{Tenant: "svc", Cost: Cost{Requests: 1, InputTokens: 500, OutputTokens: 200}, MaxWait: -1}

// acquireReport is one uncontended Acquire granted at once, then its Report.
func acquireReport(tb testing.TB, p *Pool, now int64) {
	d, err := p.Acquire(now, benchReq)
	if err != nil || !d.Granted {
		tb.Fatalf("Acquire = %+v, %v", d, err)
	}
	if _, err := p.Report(now, d.Grant.Seq, Usage{InputTokens: 480, OutputTokens: 150}, Success, 0); err != nil {
		tb.Fatal(err)
	}
}

// cpuTime returns the CPU time the process has used, all threads included (the
// garbage collector's too): on a loaded machine it is steadier than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds a cpu-ns/op metric for the loop that follows; call the returned
// function after it.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func BenchmarkAcquireReport(b *testing.B) {
	p := newTestPool(b, roomyConfig())
	now := int64(0)
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		now += 1000
		acquireReport(b, p, now)
	}
}

func BenchmarkLimiterAcquireReport(b *testing.B) {
	l := New(clock.Real())
	if err := l.Apply(map[string]Config{"p": roomyConfig()}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		d, err := l.Acquire(ctx, "p", benchReq)
		if err != nil || !d.Granted {
			b.Fatalf("Acquire = %+v, %v", d, err)
		}
		if _, err := l.Report("p", d.Grant.ID(), Usage{InputTokens: 480, OutputTokens: 150}, Success, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLimiterAcquireReportParallel(b *testing.B) {
	l := New(clock.Real())
	cfgs := map[string]Config{}
	names := make([]string, 64)
	for i := range names {
		names[i] = fmt.Sprint("p", i)
		cfgs[names[i]] = roomyConfig()
	}
	if err := l.Apply(cfgs); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	defer reportCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			pool := names[i%len(names)]
			i++
			d, err := l.Acquire(ctx, pool, benchReq)
			if err != nil || !d.Granted {
				b.Fatalf("Acquire = %+v, %v", d, err)
			}
			if _, err := l.Report(pool, d.Grant.ID(), Usage{InputTokens: 480}, Success, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestAcquireReportAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts differ under coverage or the race detector")
	}
	p := newTestPool(t, roomyConfig())
	now := int64(0)
	// Warm up past the tombstone cap, so that the pool is in its steady state.
	for range DefaultMaxTombstones + 1000 {
		now += 1000
		acquireReport(t, p, now)
	}
	allocs := testing.AllocsPerRun(10000, func() {
		now += 1000
		acquireReport(t, p, now)
	})
	if allocs > 2 {
		t.Fatalf("Acquire+Report: %.2f allocations, want at most 2", allocs)
	}
}

// poolMemory returns the heap bytes per pool that n pools take, built by build.
func poolMemory(t testing.TB, n int, build func(i int) any) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	keep := make([]any, n)
	for i := range keep {
		keep[i] = build(i)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keep)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// 100k pools of one requests and one tokens limit each fit well under 200 MB.
func TestMemoryOf100kPools(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const n = 100_000
	cfg := Config{Limits: []Limit{
		{Resource: Requests, Amount: 500, Period: time.Minute},
		{Resource: Tokens, Amount: 200_000, Period: time.Minute},
	}}
	idle := poolMemory(t, n, func(i int) any {
		p, err := NewPool(cfg, 0, uint32(i))
		if err != nil {
			t.Fatal(err)
		}
		return p
	})
	// The same pools after one call each, Reported: a tombstone and its maps.
	used := poolMemory(t, n, func(i int) any {
		p, _ := NewPool(cfg, 0, uint32(i))
		p.Acquire(int64(time.Minute), Request{Cost: Cost{Requests: 1, InputTokens: 10}, RequestID: "req-0123456789"})
		p.Report(int64(time.Minute), 1, Usage{InputTokens: 5}, Success, 0)
		return p
	})
	lim := New(clock.NewFake(time.Unix(0, 0)))
	cfgs := make(map[string]Config, n)
	for i := range n {
		cfgs[fmt.Sprintf("openai/prod/model-%06d", i)] = cfg
	}
	limiter := poolMemory(t, 1, func(int) any {
		if err := lim.Apply(cfgs); err != nil {
			t.Fatal(err)
		}
		return lim
	}) / n
	t.Logf("bytes per pool: new %.0f, after one grant %.0f, in a Limiter %.0f (100k pools: %.1f MB, %.1f MB, %.1f MB)",
		idle, used, limiter, idle*n/1e6, used*n/1e6, limiter*n/1e6)
	if limiter*n > 100e6 || used*n > 200e6 {
		t.Fatalf("100k pools take %.0f MB in a Limiter, %.0f MB after one grant each", limiter*n/1e6, used*n/1e6)
	}
}
