// Package bench holds quotad's benchmarks; see README.md for how to run them and
// the latest results.
package bench

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/quotad/quotad/internal/clock"
	"github.com/quotad/quotad/limiter"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
	"github.com/quotad/quotad/server"
)

// callers is the number of concurrent callers the throughput benchmarks use.
const callers = 64

// startServer runs a quotad gRPC server on loopback with one pool that never makes
// anyone wait, and returns a connection to it.
func startServer(b *testing.B) *grpc.ClientConn {
	b.Helper()
	lim := limiter.New(clock.Real())
	err := lim.Apply(map[string]limiter.Config{"bench": {
		Limits:   []limiter.Limit{{Resource: limiter.Requests, Amount: 1 << 40, Period: time.Second}},
		LeaseTTL: time.Second,
	}})
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	quotadv1.RegisterQuotaServiceServer(gs, server.New(lim, server.NewMetrics(lim, 100), slog.New(slog.NewTextHandler(io.Discard, nil))))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go gs.Serve(lis)
	b.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return conn
}

// BenchmarkAcquireVsHealth measures Acquire calls per second beside bare gRPC unary
// calls (a health check) on the same server and connection, 64 callers at once,
// alternating half-second rounds of each so that a noisy machine slows both alike.
// One op is one pair of rounds; it reports both rates and their ratio.
func BenchmarkAcquireVsHealth(b *testing.B) {
	conn := startServer(b)
	ctx := context.Background()
	api := quotadv1.NewQuotaServiceClient(conn)
	hc := healthpb.NewHealthClient(conn)
	health := func() error {
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	acquire := func() error {
		_, err := api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "bench", Cost: &quotadv1.Cost{Requests: 1}})
		return err
	}
	var healthCalls, acquireCalls int64
	var healthTime, acquireTime time.Duration
	for range b.N {
		n, d := flatOut(b, health, 500*time.Millisecond)
		healthCalls, healthTime = healthCalls+n, healthTime+d
		n, d = flatOut(b, acquire, 500*time.Millisecond)
		acquireCalls, acquireTime = acquireCalls+n, acquireTime+d
	}
	hRate := float64(healthCalls) / healthTime.Seconds()
	aRate := float64(acquireCalls) / acquireTime.Seconds()
	b.ReportMetric(hRate, "health/s")
	b.ReportMetric(aRate, "acquire/s")
	b.ReportMetric(100*aRate/hRate, "acquire-%-of-health")
}

// flatOut runs call from 64 goroutines for d and returns how many calls completed.
func flatOut(b *testing.B, call func() error, d time.Duration) (int64, time.Duration) {
	var total atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(d)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := int64(0)
			for time.Now().Before(stop) {
				if err := call(); err != nil {
					b.Error(err)
					return
				}
				n++
			}
			total.Add(n)
		}()
	}
	wg.Wait()
	return total.Load(), time.Since(start)
}
