package driver

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	quotad "github.com/quotad/quotad/clients/go"
)

// throughputPool never makes anyone wait.
const throughputPool = "bench/throughput"

// opTimeout bounds one measured operation.
const opTimeout = 10 * time.Second

// Throughput is the throughput scenario: Callers goroutines of this process
// call one quotad node as fast as they can for Duration, first with bare gRPC
// health checks, then with Acquire+Report pairs through the Go client.
type Throughput struct {
	Callers  int           `json:"callers"`
	Duration time.Duration `json:"duration"`
}

// StandardThroughput is 64 callers for 10 s per measurement.
func StandardThroughput() Throughput { return Throughput{Callers: 64, Duration: 10 * time.Second} }

// ThroughputResult is what RunThroughput measured.
type ThroughputResult struct {
	Scenario Throughput `json:"scenario"`
	Health   Rate       `json:"health"`
	// AcquireReport counts Acquire+Report pairs (two RPCs each).
	AcquireReport Rate `json:"acquire_report"`
}

// Rate is one measured loop: operations per second, their latency, and the
// CPU the quotad process used per second of it (1 = one core).
type Rate struct {
	Ops        int           `json:"ops"`
	PerSecond  float64       `json:"per_second"`
	P50        time.Duration `json:"p50"`
	P99        time.Duration `json:"p99"`
	QuotadCPUs float64       `json:"quotad_cpus"`
}

// RunThroughput starts a quotad node with one pool that never makes anyone
// wait and measures both loops against it.
func RunThroughput(ctx context.Context, tp Throughput, quotadBin string) (ThroughputResult, error) {
	res := ThroughputResult{Scenario: tp}
	dir, err := os.MkdirTemp("", "quotad-bench-")
	if err != nil {
		return res, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	yaml := fmt.Sprintf("pools:\n  - name: %s\n    limits:\n      - {resource: requests, amount: 1000000000000, per: second}\n", throughputPool)
	node, err := startQuotad(ctx, quotadBin, dir, yaml)
	if err != nil {
		return res, err
	}
	defer node.Stop()

	conn, err := grpc.NewClient(node.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return res, fmt.Errorf("connecting to quotad: %w", err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	res.Health, err = measure(ctx, tp, node, func(ctx context.Context) error {
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	})
	if err != nil {
		return res, fmt.Errorf("health checks: %w", err)
	}

	client, err := quotad.Dial(ctx, []string{node.Addr})
	if err != nil {
		return res, fmt.Errorf("dialing quotad: %w", err)
	}
	defer client.Close()
	res.AcquireReport, err = measure(ctx, tp, node, func(ctx context.Context) error {
		g, err := client.Acquire(ctx, throughputPool, quotad.Cost{Requests: 1})
		if err != nil {
			return err
		}
		return g.Report(ctx, quotad.Usage{})
	})
	if err != nil {
		return res, fmt.Errorf("acquire+report: %w", err)
	}
	return res, nil
}

// measure runs op in tp.Callers goroutines for tp.Duration, after a short
// warm-up that is not counted.
func measure(ctx context.Context, tp Throughput, node *quotadNode, op func(context.Context) error) (Rate, error) {
	if err := loop(ctx, tp.Callers, tp.Duration/10, op, nil); err != nil {
		return Rate{}, err
	}
	cpu0, err := node.CPU()
	if err != nil {
		return Rate{}, err
	}
	lat := make([][]time.Duration, tp.Callers)
	start := time.Now()
	if err := loop(ctx, tp.Callers, tp.Duration, op, lat); err != nil {
		return Rate{}, err
	}
	wall := time.Since(start)
	cpu1, err := node.CPU()
	if err != nil {
		return Rate{}, err
	}
	all := slices.Concat(lat...)
	return Rate{
		Ops:        len(all),
		PerSecond:  float64(len(all)) / wall.Seconds(),
		P50:        percentile(all, 0.50),
		P99:        percentile(all, 0.99),
		QuotadCPUs: (cpu1 - cpu0).Seconds() / wall.Seconds(),
	}, nil
}

// loop runs op in n goroutines until d has passed (see callLoop), each op with
// a context of its own that d does not cancel, noting each latency in
// lat[goroutine] when lat is not nil, and returns the first error.
func loop(ctx context.Context, n int, d time.Duration, op func(context.Context) error, lat [][]time.Duration) error {
	return callLoop(ctx, n, d, func(i int) error {
		start := time.Now()
		opCtx, cancelOp := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
		err := op(opCtx)
		cancelOp()
		if err == nil && lat != nil {
			lat[i] = append(lat[i], time.Since(start))
		}
		return err
	})
}
