package main_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quotad/quotad/internal/clustertest"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// TestClusterPartitionRealProcesses cuts the gossip between a pool's owner and the
// two other members (each node's --gossip-block-file) for longer than every
// detection and fence timeout, then heals it, under saturating load from clients
// of all three nodes. During the partition the cut-off owner answers UNAVAILABLE
// and the majority serves the pool; through it and 10 s after, the grants never
// exceed the limit.
func TestClusterPartitionRealProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 20 s")
	}
	dir := t.TempDir()
	config := filepath.Join(dir, "pools.yaml")
	if err := os.WriteFile(config, []byte("pools:\n  - name: shared\n    limits: [{resource: requests, amount: 20, per: 1s}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ids := []string{clustertest.FreeGossipAddr(t), clustertest.FreeGossipAddr(t), clustertest.FreeGossipAddr(t)}
	blockFile := map[string]string{}
	var nodes []*clustertest.Node
	for i, id := range ids {
		blockFile[id] = filepath.Join(dir, "block-"+string(rune('a'+i)))
		nodes = append(nodes, clustertest.Start(t, config, id, ids, "--gossip-block-file", blockFile[id]))
	}
	clustertest.WaitFormed(t, nodes, 1, 10*time.Second)
	owner := clustertest.Owner("shared", nodes)
	others := clustertest.Others(nodes, owner)
	load := clustertest.StartLoad(t, "shared", clustertest.Addrs(nodes), 6)
	clustertest.WaitFor(t, 5*time.Second, "grants flow", func() bool { return load.Count() > 20 })

	cut := func(node *clustertest.Node, peers ...*clustertest.Node) {
		var lines []string
		for _, p := range peers {
			lines = append(lines, p.ID)
		}
		if err := os.WriteFile(blockFile[node.ID], []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cut(owner, others...)
	for _, o := range others {
		cut(o, owner)
	}
	cutAt := time.Now()

	// Once its certificates have run out (fence-after), the cut-off owner is
	// fenced: a call to it waits out the settle time, then gets UNAVAILABLE.
	time.Sleep(time.Until(cutAt.Add(clustertest.FenceAfter + 200*time.Millisecond)))
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	resp, err := owner.Quota.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "shared", Cost: &quotadv1.Cost{Requests: 1}})
	if status.Code(err) != codes.Unavailable {
		t.Logf("answer: %v", resp)
		t.Errorf("Acquire on the cut-off owner: %v, want UNAVAILABLE (fenced)", err)
	}
	if time.Since(cutAt) < 4*time.Second {
		time.Sleep(4*time.Second - time.Since(cutAt)) // outlast every timeout by far
	}
	served := clustertest.CountBetween(load.Grants(), cutAt.Add(3*time.Second), time.Now())

	healAt := time.Now()
	for _, n := range nodes {
		cut(n)
	}
	clustertest.WaitFormed(t, nodes, 1, 10*time.Second)
	if d := 10*time.Second - time.Since(healAt); d > 0 {
		time.Sleep(d) // the check covers 10 s after the healing
	}
	grants := load.Stop()
	// Every takeover starts empty; the reference starts full (the pool may have
	// held up to its capacity when the load started) with 20 ms of refill for
	// grants timed at receipt.
	if r := clustertest.ReplayBucket(grants, load.Start, 20, 20+0.4, 20+0.4); !r.OK() {
		t.Fatalf("over the limit: %v", r)
	}
	if want := int(0.5 * 20 * healAt.Sub(cutAt.Add(3*time.Second)).Seconds()); served < want {
		t.Errorf("the majority granted %d in the partition's last %v, want at least %d", served, healAt.Sub(cutAt.Add(3*time.Second)).Round(time.Millisecond), want)
	}
	if n := clustertest.CountBetween(grants, healAt.Add(5*time.Second), time.Now()); n < 50 {
		t.Errorf("after healing: %d grants in the last 5 s", n)
	}
	if !strings.Contains(owner.Log(), "gossip fault drill") {
		t.Error("the owner did not log the drill")
	}
}
