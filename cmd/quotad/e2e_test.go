package main_test

import (
	"context"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	quotad "github.com/quotad/quotad/clients/go"
	"github.com/quotad/quotad/internal/testnode"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// e2eConfig is the pool file the end-to-end tests run quotad with.
const e2eConfig = `
pools:
  - name: steady            # 10 requests per second, burst 2, starts empty
    limits:
      - {resource: requests, amount: 10, per: 1s, burst: 2}
    tenants:
      web: {weight: 3}
      batch: {weight: 1}
  - name: fair              # 100 requests per second, for the 3:1 share
    limits:
      - {resource: requests, amount: 100, per: 1s, burst: 5}
    tenants:
      web: {weight: 3}
      batch: {weight: 1}
  - name: slow              # 1 request per 10 s, starts full
    limits:
      - {resource: requests, amount: 1, per: 10s, initial: full}
  - name: tokens
    limits:
      - {resource: tokens, amount: 1000, per: 1m}
  - name: one-at-a-time
    concurrent: 1
    lease_ttl: 1s
  - name: daily
    limits:
      - {resource: requests, amount: 1000, per: 24h}
`

func startNode(t *testing.T, extra ...string) (*testnode.Node, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "quotad.yaml")
	if err := os.WriteFile(cfg, []byte(e2eConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	n := testnode.Start(t, append([]string{"--config", cfg, "--metrics-listen", ""}, extra...)...)
	return n, dir
}

func dial(t *testing.T, addr string) *quotad.Client {
	t.Helper()
	c, err := quotad.Dial(context.Background(), []string{addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func rawAPI(t *testing.T, addr string) quotadv1.QuotaServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return quotadv1.NewQuotaServiceClient(conn)
}

type grantRecord struct {
	sent   time.Time // the Acquire was sent
	at     time.Time // the grant arrived
	waited time.Duration
	seq    uint64
	tenant string
}

// saturate runs callers goroutines, spread over tenants, that acquire one request
// from pool and report it, for run; it returns the grants in the order they arrived.
func saturate(t *testing.T, c *quotad.Client, pool string, tenants []string, callers int, run time.Duration) (time.Time, []grantRecord) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	var (
		mu     sync.Mutex
		grants []grantRecord
		wg     sync.WaitGroup
	)
	for i := range callers {
		tenant := tenants[i%len(tenants)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < run {
				sent := time.Now()
				g, err := c.Acquire(ctx, pool, quotad.Cost{Requests: 1}, quotad.WithTenant(tenant))
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("acquire: %v", err)
					}
					return
				}
				mu.Lock()
				grants = append(grants, grantRecord{sent: sent, at: time.Now(), waited: g.Waited, seq: g.Sequence, tenant: tenant})
				mu.Unlock()
				if err := g.Report(ctx, quotad.Usage{}); err != nil && ctx.Err() == nil {
					t.Errorf("report: %v", err)
				}
			}
		}()
	}
	time.Sleep(run) // the run itself: callers stop on their own after it
	cancel()
	wg.Wait()
	sort.Slice(grants, func(i, j int) bool { return grants[i].at.Before(grants[j].at) })
	return start, grants
}

// TestSaturatedPool drives a 10/s pool (burst 2) with 40 callers for 10 s, and a
// 200/s pool shared 3:1 by two tenants at the same time.
func TestSaturatedPool(t *testing.T) {
	if testing.Short() {
		t.Skip("10 s end-to-end run")
	}
	n, _ := startNode(t)
	c := dial(t, n.Addr)
	const (
		run   = 10 * time.Second
		rate  = 10.0
		burst = 2
	)
	var (
		start  time.Time
		grants []grantRecord
		fair   []grantRecord
		wg     sync.WaitGroup
	)
	wg.Add(2)
	go func() { defer wg.Done(); start, grants = saturate(t, c, "steady", []string{""}, 40, run) }()
	go func() { defer wg.Done(); _, fair = saturate(t, c, "fair", []string{"web", "batch"}, 40, run) }()
	wg.Wait()

	// Replayed through a reference bucket, no grant overdraws it. The bucket starts
	// full when the callers start (the pool has been filling since the node
	// started). The test sees each grant only within a window: after it sent the
	// call plus the time the call waited in the queue, and before the answer came.
	// The pool has one tenant, so it granted in sequence order; the replay places
	// each grant as early in its window as the bucket allows, and fails only when
	// no placement in the window fits.
	placed := checkReplay(t, start, grants, rate, burst)
	// From the first second to the last, grants reach 95% of rate x time (the ends
	// are left out: the callers start, and stop, there).
	late := 0
	for _, at := range placed {
		if at >= time.Second && at < run-time.Second {
			late++
		}
	}
	if want := 0.95 * rate * (run - 2*time.Second).Seconds(); float64(late) < want {
		t.Errorf("%d grants from 1s to %v, want at least %.1f", late, run-time.Second, want)
	}
	// Within a tenant, grants come out in sequence order.
	for _, gs := range [][]grantRecord{grants, fair} {
		bySeq := append([]grantRecord(nil), gs...)
		sort.Slice(bySeq, func(i, j int) bool { return bySeq[i].seq < bySeq[j].seq })
		lastSeq := map[string]uint64{}
		for _, g := range bySeq {
			if g.seq <= lastSeq[g.tenant] {
				t.Errorf("tenant %s: sequence %d after %d", g.tenant, g.seq, lastSeq[g.tenant])
			}
			lastSeq[g.tenant] = g.seq
		}
	}
	// Weights 3:1 under saturation give 3:1, within 5% (the first second excepted:
	// the burst and the callers' start).
	var web, batch int
	for _, g := range fair[len(fair)/10:] {
		if g.tenant == "web" {
			web++
		} else {
			batch++
		}
	}
	if ratio := float64(web) / float64(batch); ratio < 3*0.95 || ratio > 3*1.05 {
		t.Errorf("web:batch = %d:%d = %.2f, want 3 +- 5%%", web, batch, ratio)
	}
	t.Logf("steady: %d grants in %v, %d from 1s to %v; fair: web %d, batch %d", len(grants), run, late, run-time.Second, web, batch)
}

// checkReplay replays grants (one tenant: granted in sequence order) through an
// exact reference bucket of rate per second and capacity burst, full at start. It
// returns when, after start, it placed each grant.
func checkReplay(t *testing.T, start time.Time, grants []grantRecord, rate float64, burst int64) []time.Duration {
	t.Helper()
	bySeq := append([]grantRecord(nil), grants...)
	sort.Slice(bySeq, func(i, j int) bool { return bySeq[i].seq < bySeq[j].seq })
	seconds := func(at time.Time) *big.Rat { return new(big.Rat).SetFloat64(at.Sub(start).Seconds()) }
	ratePerSec := new(big.Rat).SetFloat64(rate)
	capacity := big.NewRat(burst, 1)
	one := big.NewRat(1, 1)
	level, last := new(big.Rat).Set(capacity), new(big.Rat)
	var placed []time.Duration
	for i, g := range bySeq {
		earliest := seconds(g.sent.Add(g.waited))
		if earliest.Cmp(last) < 0 {
			earliest.Set(last)
		}
		// level at earliest
		refill := new(big.Rat).Mul(new(big.Rat).Sub(earliest, last), ratePerSec)
		atEarliest := new(big.Rat).Add(level, refill)
		if atEarliest.Cmp(capacity) > 0 {
			atEarliest.Set(capacity)
		}
		at := earliest
		if atEarliest.Cmp(one) < 0 {
			// the first instant the bucket holds one request again
			need := new(big.Rat).Quo(new(big.Rat).Sub(one, atEarliest), ratePerSec)
			at = new(big.Rat).Add(earliest, need)
			atEarliest.Set(one)
		}
		if at.Cmp(seconds(g.at)) > 0 {
			f, _ := at.Float64()
			t.Fatalf("grant %d (sequence %d) answered at %v: the reference bucket could pay it only at %.4fs", i, g.seq, g.at.Sub(start), f)
		}
		level.Sub(atEarliest, one)
		last = at
		f, _ := at.Float64()
		placed = append(placed, time.Duration(f*float64(time.Second)))
	}
	return placed
}

func TestTryOnlyRefusedWithRetryAfter(t *testing.T) {
	n, _ := startNode(t)
	c := dial(t, n.Addr)
	ctx := context.Background()
	g, err := c.Acquire(ctx, "slow", quotad.Cost{Requests: 1}, quotad.WithMaxWait(0))
	if err != nil {
		t.Fatal(err)
	}
	granted := time.Now()
	if err := g.Report(ctx, quotad.Usage{}); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	_, err = c.Acquire(ctx, "slow", quotad.Cost{Requests: 1}, quotad.WithMaxWait(0))
	answered := time.Since(before)
	var ng *quotad.NotGrantedError
	if !errors.As(err, &ng) {
		t.Fatalf("try-only acquire on an empty bucket: %v, want NotGrantedError", err)
	}
	if answered > time.Second {
		t.Errorf("refusal took %v, want at once", answered)
	}
	// The bucket refills in 10 s from the grant.
	want := 10*time.Second - before.Sub(granted)
	if d := ng.RetryAfter - want; d > 20*time.Millisecond || d < -20*time.Millisecond {
		t.Errorf("retry_after %v, want %v +- 20ms", ng.RetryAfter, want)
	}
}

func TestCostAboveCapacityFailsAtOnce(t *testing.T) {
	n, _ := startNode(t)
	c := dial(t, n.Addr)
	_, err := c.Acquire(context.Background(), "tokens", quotad.Cost{InputTokens: 800, OutputTokens: 201})
	if !errors.Is(err, quotad.ErrCostTooLarge) {
		t.Fatalf("acquire of 1001 tokens from a 1000-token bucket: %v, want ErrCostTooLarge", err)
	}
}

// TestKilledClientLeavesQueue kills a client process while it waits.
func TestKilledClientLeavesQueue(t *testing.T) {
	if addr := os.Getenv("QUOTAD_E2E_WAITER"); addr != "" {
		waitForever(addr)
		return
	}
	n, _ := startNode(t)
	api := rawAPI(t, n.Addr)
	ctx := context.Background()
	// Drain the slow pool so the child has to wait.
	if _, err := api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "slow"}); err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0], "-test.run=^TestKilledClientLeavesQueue$")
	child.Env = append(os.Environ(), "QUOTAD_E2E_WAITER="+n.Addr)
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the child to wait in the queue", func() bool { return waiters(t, api, "slow") == 1 })
	child.Process.Kill()
	child.Wait()
	killed := time.Now()
	waitFor(t, time.Second, "the killed client's waiter to leave", func() bool { return waiters(t, api, "slow") == 0 })
	t.Logf("waiter gone %v after the kill", time.Since(killed))
}

func waitForever(addr string) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		os.Exit(3)
	}
	quotadv1.NewQuotaServiceClient(conn).Acquire(context.Background(), &quotadv1.AcquireRequest{Pool: "slow"})
	os.Exit(4) // only reached if the waiter was granted or refused
}

func waiters(t *testing.T, api quotadv1.QuotaServiceClient, pool string) int64 {
	t.Helper()
	st, err := api.GetPool(context.Background(), &quotadv1.GetPoolRequest{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	return st.GetWaiters()
}

// waitFor polls cond (every 10 ms) until it holds, failing after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUnrenewedLeaseFreesSlot: a client that stops renewing frees its concurrency
// slot within one lease.
func TestUnrenewedLeaseFreesSlot(t *testing.T) {
	n, _ := startNode(t)
	api := rawAPI(t, n.Addr)
	ctx := context.Background()
	first, err := api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "one-at-a-time"})
	if err != nil || !first.GetGranted() {
		t.Fatalf("first acquire: %v %v", first, err)
	}
	start := time.Now()
	second, err := api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "one-at-a-time"})
	if err != nil || !second.GetGranted() {
		t.Fatalf("second acquire: %v %v", second, err)
	}
	waited := time.Since(start)
	if lease := first.GetLeaseTtl().AsDuration(); waited > lease+500*time.Millisecond || waited < lease/2 {
		t.Errorf("second grant after %v, want about one lease (%v)", waited, lease)
	}
	st, err := api.GetPool(ctx, &quotadv1.GetPoolRequest{Pool: "one-at-a-time"})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetInFlight() != 1 || st.GetTombstones() != 1 {
		t.Errorf("in_flight %d tombstones %d, want 1 and 1 (the expired lease)", st.GetInFlight(), st.GetTombstones())
	}
}

// TestRestartKeepsDailyLevel: SIGTERM, start again with the same --state-dir.
func TestRestartKeepsDailyLevel(t *testing.T) {
	stateDir := t.TempDir()
	n, _ := startNode(t, "--state-dir", stateDir)
	api := rawAPI(t, n.Addr)
	ctx := context.Background()
	for range 300 {
		if _, err := api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "daily", MaxWait: nil}); err != nil {
			t.Fatal(err)
		}
	}
	if code := n.Stop(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	n2, _ := startNode(t, "--state-dir", stateDir)
	st, err := rawAPI(t, n2.Addr).GetPool(ctx, &quotadv1.GetPoolRequest{Pool: "daily"})
	if err != nil {
		t.Fatal(err)
	}
	// 1000 per day refills about 0.0116 per second: the level is 700 plus a hair.
	if level := st.GetLimits()[0].GetLevel(); level < 700 || level > 702 {
		t.Errorf("daily level after restart %d, want 700", level)
	}
}

// TestSigtermAnswersWaiters: waiters get UNAVAILABLE and the node exits 0 promptly.
func TestSigtermAnswersWaiters(t *testing.T) {
	n, _ := startNode(t)
	api := rawAPI(t, n.Addr)
	ctx := context.Background()
	if _, err := api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "slow"}); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "slow"})
		errc <- err
	}()
	waitFor(t, 5*time.Second, "a waiter", func() bool { return waiters(t, api, "slow") == 1 })
	start := time.Now()
	if code := n.Stop(t, 5*time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	err := <-errc
	if got := statusCode(err); got != "Unavailable" {
		t.Errorf("waiter got %v, want UNAVAILABLE", err)
	}
	t.Logf("exited %v after SIGTERM", time.Since(start))
}

func statusCode(err error) string { return status.Code(err).String() }
