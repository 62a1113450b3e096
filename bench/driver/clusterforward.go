package driver

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// forwardPool never makes anyone wait.
const forwardPool = "bench/forward"

// idleMeasure is how long the idle cluster's CPU is measured.
const idleMeasure = 3 * time.Second

// The targets of the forwarding scenario.
const (
	targetAlone     = "single node"
	targetLocal     = "owner (local)"
	targetForwarded = "non-owner (forwarded)"
)

var forwardTargets = []string{targetAlone, targetLocal, targetForwarded}

// ClusterForward measures what forwarding costs: callers send Acquire+Report
// pairs (raw gRPC, one connection) to the pool's owner (local) or to a node
// that does not own it (forwarded: that node passes both calls to the owner),
// and, as a baseline, to a node that is not clustered; at each concurrency, in
// Rounds alternating rounds of Duration each so that a noisy machine slows all
// alike.
type ClusterForward struct {
	Name        string        `json:"name"`
	Nodes       int           `json:"nodes"`
	Concurrency []int         `json:"concurrency"`
	Duration    time.Duration `json:"duration"`
	Rounds      int           `json:"rounds"`
}

// StandardClusterForward is 3 nodes, concurrency 1, 16 and 64, 2 rounds of 2 s.
func StandardClusterForward() ClusterForward {
	return ClusterForward{Name: "cluster-forward", Nodes: 3, Concurrency: []int{1, 16, 64},
		Duration: 2 * time.Second, Rounds: 2}
}

// ForwardRow is one (concurrency, target) measurement, over all its rounds.
type ForwardRow struct {
	Concurrency int    `json:"concurrency"`
	Target      string `json:"target"` // targetAlone, targetLocal or targetForwarded
	// Pairs of Acquire+Report, per second of measurement.
	Pairs     int     `json:"pairs"`
	PerSecond float64 `json:"per_second"`
	// Round trips of each call, as the caller saw them.
	AcquireP50 time.Duration `json:"acquire_p50"`
	AcquireP99 time.Duration `json:"acquire_p99"`
	ReportP50  time.Duration `json:"report_p50"`
	ReportP99  time.Duration `json:"report_p99"`
	// QuotadCPUs is the CPU the target used per second (1 = one core): every
	// node of the cluster, or the single node.
	QuotadCPUs float64 `json:"quotad_cpus"`
}

// ForwardResult is what RunClusterForward measured.
type ForwardResult struct {
	Scenario ClusterForward `json:"scenario"`
	Owner    int            `json:"owner"`
	Via      int            `json:"via"` // the node forwarded calls went to
	// IdleCPUs is the CPU the cluster's nodes used together while idle.
	IdleCPUs float64      `json:"idle_cpus"`
	Rows     []ForwardRow `json:"rows"`
}

// RunClusterForward starts a cluster and a single node, each with one pool that
// never makes anyone wait, and measures calls to the single node, to the
// cluster's owner of the pool and to a non-owner at each concurrency.
func RunClusterForward(ctx context.Context, cf ClusterForward, quotadBin string, progressW io.Writer) (ForwardResult, error) {
	res := ForwardResult{Scenario: cf}
	if cf.Nodes < 2 || len(cf.Concurrency) == 0 || cf.Duration <= 0 || cf.Rounds < 1 {
		return res, fmt.Errorf("%s: needs 2 nodes or more, a concurrency, a duration and a round", cf.Name)
	}
	dir, err := os.MkdirTemp("", "quotad-bench-")
	if err != nil {
		return res, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	yaml := fmt.Sprintf("pools:\n  - name: %s\n    limits:\n      - {resource: requests, amount: 1000000000000, per: second}\n", forwardPool)
	c, err := startFormedCluster(ctx, quotadBin, dir, cf.Nodes, yaml, 1)
	if err != nil {
		return res, err
	}
	defer c.Stop()
	res.Owner = c.OwnerIndex(forwardPool)
	res.Via = (res.Owner + 1) % cf.Nodes
	progress(progressW, "%s: pool owned by node %d; forwarded calls go through node %d", cf.Name, res.Owner, res.Via)

	// The baseline: a node on its own, not clustered, with the same pool.
	alone, err := startQuotad(ctx, quotadBin, dir, yaml)
	if err != nil {
		return res, err
	}
	defer alone.Stop()

	apis := map[string]quotadv1.QuotaServiceClient{}
	cpus := map[string]func() (time.Duration, error){}
	for target, addr := range map[string]string{targetAlone: alone.Addr, targetLocal: c.nodes[res.Owner].Addr,
		targetForwarded: c.nodes[res.Via].Addr} {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return res, fmt.Errorf("connecting to %s: %w", addr, err)
		}
		defer conn.Close()
		apis[target], cpus[target] = quotadv1.NewQuotaServiceClient(conn), c.CPU
	}
	cpus[targetAlone] = alone.CPU

	// What the cluster costs doing nothing: heartbeats, gossip, reconciliation.
	cpu0, err := c.CPU()
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(idleMeasure):
	}
	cpu1, err := c.CPU()
	if err != nil {
		return res, err
	}
	res.IdleCPUs = (cpu1 - cpu0).Seconds() / time.Since(t0).Seconds()
	var ids atomic.Uint64
	pair := func(api quotadv1.QuotaServiceClient, acq, rep *[]time.Duration) error {
		ctx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		t0 := time.Now()
		g, err := api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: forwardPool, Cost: &quotadv1.Cost{Requests: 1},
			RequestId: "fwd-" + strconv.FormatUint(ids.Add(1), 10)})
		if err != nil {
			return fmt.Errorf("acquire: %w", err)
		}
		if !g.GetGranted() {
			return fmt.Errorf("acquire: not granted (retry after %v)", g.GetRetryAfter().AsDuration())
		}
		t1 := time.Now()
		if _, err := api.Report(ctx, &quotadv1.ReportRequest{GrantId: g.GetGrantId(), Pool: forwardPool,
			Outcome: quotadv1.Outcome_OUTCOME_SUCCESS}); err != nil {
			return fmt.Errorf("report: %w", err)
		}
		if acq != nil {
			*acq = append(*acq, t1.Sub(t0))
			*rep = append(*rep, time.Since(t1))
		}
		return nil
	}
	for _, n := range cf.Concurrency {
		type acc struct {
			acq, rep []time.Duration
			wall     time.Duration
			cpu      time.Duration
		}
		accs := map[string]*acc{targetAlone: {}, targetLocal: {}, targetForwarded: {}}
		for round := range cf.Rounds {
			for _, target := range forwardTargets {
				api, a := apis[target], accs[target]
				// Warm-up, not counted.
				if err := callLoop(ctx, n, cf.Duration/10, func(int) error { return pair(api, nil, nil) }); err != nil {
					return res, fmt.Errorf("%s, %d callers: %w", target, n, err)
				}
				acq, rep := make([][]time.Duration, n), make([][]time.Duration, n)
				cpu0, err := cpus[target]()
				if err != nil {
					return res, err
				}
				t0 := time.Now()
				if err := callLoop(ctx, n, cf.Duration, func(i int) error { return pair(api, &acq[i], &rep[i]) }); err != nil {
					return res, fmt.Errorf("%s, %d callers: %w", target, n, err)
				}
				a.wall += time.Since(t0)
				cpu1, err := cpus[target]()
				if err != nil {
					return res, err
				}
				a.cpu += cpu1 - cpu0
				a.acq, a.rep = append(a.acq, slices.Concat(acq...)...), append(a.rep, slices.Concat(rep...)...)
				progress(progressW, "%s: %d callers, %s, round %d: %.0f pairs/s", cf.Name, n, target, round+1,
					float64(len(slices.Concat(acq...)))/time.Since(t0).Seconds())
			}
		}
		for _, target := range forwardTargets {
			a := accs[target]
			res.Rows = append(res.Rows, ForwardRow{
				Concurrency: n, Target: target, Pairs: len(a.acq),
				PerSecond:  float64(len(a.acq)) / a.wall.Seconds(),
				AcquireP50: percentile(a.acq, 0.50), AcquireP99: percentile(a.acq, 0.99),
				ReportP50: percentile(a.rep, 0.50), ReportP99: percentile(a.rep, 0.99),
				QuotadCPUs: a.cpu.Seconds() / a.wall.Seconds(),
			})
		}
	}
	return res, nil
}

// callLoop runs op(i) in goroutines i = 0..n-1 until d has passed; every op
// started runs to its end. It returns the first error.
func callLoop(ctx context.Context, n int, d time.Duration, op func(i int) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				if err := op(i); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
