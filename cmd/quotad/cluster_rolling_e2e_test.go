package main_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quotad/quotad/internal/clustertest"
)

// TestClusterRollingRestartKeepsServing restarts the three members of a cluster
// one after another (SIGTERM, then a new process on the same gossip address, as a
// deploy of the next build does) under saturating load: the pool is served
// throughout, never over its limit.
func TestClusterRollingRestartKeepsServing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 15 s")
	}
	config := filepath.Join(t.TempDir(), "pools.yaml")
	if err := os.WriteFile(config, []byte("pools:\n  - name: shared\n    limits: [{resource: requests, amount: 20, per: 1s}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	nodes := clustertest.StartCluster(t, config, 3)
	ids := clustertest.IDs(nodes)
	clustertest.WaitFormed(t, nodes, 1, 10*time.Second)
	load := clustertest.StartLoad(t, "shared", clustertest.Addrs(nodes), 6)
	clustertest.WaitFor(t, 5*time.Second, "grants flow", func() bool { return load.Count() > 20 })

	begin := time.Now()
	for i := range nodes {
		nodes[i].Stop(t, 5*time.Second)
		nodes[i] = clustertest.Start(t, config, ids[i], ids)
		clustertest.WaitFormed(t, nodes, 1, 10*time.Second)
	}
	end := time.Now()
	time.Sleep(time.Second)
	grants := load.Stop()
	// Takeovers start empty, handoffs continue exactly: the bucket never needs its
	// capacity; 20 ms of refill cover grants timed at receipt.
	if r := clustertest.ReplayBucket(grants, load.Start, 20, 20+0.4, 20+0.4); !r.OK() {
		t.Fatalf("over the limit: %v", r)
	}
	gap, at := clustertest.MaxGap(grants, begin, end)
	if gap > 3*time.Second {
		t.Errorf("no grant for %v from %v into the rolling restart", gap, at.Sub(begin))
	}
	if n := clustertest.CountBetween(grants, begin, end); float64(n) < 0.5*20*end.Sub(begin).Seconds() {
		t.Errorf("%d grants over the %v restart; want at least half the rate", n, end.Sub(begin))
	}
	t.Logf("restart of 3 nodes took %v; longest gap %v; %d grants", end.Sub(begin).Round(time.Millisecond), gap, len(grants))
}
