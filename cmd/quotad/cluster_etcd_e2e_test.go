package main_test

import (
	"strings"
	"testing"
	"time"

	"github.com/quotad/quotad/internal/clustertest"
	"github.com/quotad/quotad/internal/etcdtest"
)

// startEtcdPair starts etcd holding the pool "shared" (20 requests per second)
// and two nodes on it (registration TTL 2 s), waits until they serve the pool,
// and returns the nodes, the pool's owner and the other node.
func startEtcdPair(t *testing.T) (nodes []*clustertest.Node, owner, survivor *clustertest.Node) {
	t.Helper()
	e := etcdtest.Start(t)
	etcdtest.Put(t, e.Client(t), "/quotad/pools/shared", "limits: [{resource: requests, amount: 20, per: 1s}]\n")
	etcdArgs := []string{"--etcd-endpoints", strings.Join(e.Endpoints(), ","), "--etcd-node-ttl", "2s"}
	nodes = []*clustertest.Node{
		clustertest.Start(t, "", clustertest.FreeGossipAddr(t), nil, etcdArgs...),
		clustertest.Start(t, "", clustertest.FreeGossipAddr(t), nil, etcdArgs...),
	}
	clustertest.WaitFormed(t, nodes, 1, 10*time.Second)
	owner = clustertest.Owner("shared", nodes)
	survivor = clustertest.Others(nodes, owner)[0]
	return nodes, owner, survivor
}

// TestClusterOnEtcdTwoNodesSurviveAKill: with etcd, the members of record are the
// registered nodes, so two nodes are enough: when the owner of a pool is killed,
// the survivor takes the pool once the dead node's registration is gone (TTL 2 s
// here), and not before. Grants never exceed the limit.
func TestClusterOnEtcdTwoNodesSurviveAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 10 s")
	}
	nodes, owner, survivor := startEtcdPair(t)
	load := clustertest.StartLoad(t, "shared", clustertest.Addrs(nodes), 6)
	clustertest.WaitFor(t, 5*time.Second, "grants flow", func() bool { return load.Count() > 20 })

	owner.Kill()
	killed := time.Now()
	clustertest.WaitFor(t, 8*time.Second, "the survivor grants", func() bool {
		_, ok := clustertest.FirstAfter(load.Grants(), killed)
		return ok
	})
	first, _ := clustertest.FirstAfter(load.Grants(), killed)
	gap := first.At.Sub(killed)
	time.Sleep(2 * time.Second)
	grants := load.Stop()
	if gap < time.Second {
		t.Errorf("the survivor granted %v after the kill: before the dead node's registration (TTL 2 s) can have expired", gap)
	}
	// Takeovers start empty, so the bucket never needs its capacity; 20 ms of
	// refill cover grants timed at receipt.
	if r := clustertest.ReplayBucket(grants, load.Start, 20, 20+0.4, 20+0.4); !r.OK() {
		t.Fatalf("over the limit: %v", r)
	}
	st, err := survivor.Status()
	if err != nil || len(st.GetRecord()) != 1 || st.GetOwnedPools() != 1 {
		t.Errorf("survivor after the kill: %v %v", st, err)
	}
	t.Logf("first grant %v after the kill", gap.Round(time.Millisecond))
}

// TestClusterOnEtcdOwnerStoppedHandsOff: with etcd too, a node stopped with
// SIGTERM hands its pools over with their state: it stays registered (a member
// of record, whose handoffs the others accept) until it has left.
func TestClusterOnEtcdOwnerStoppedHandsOff(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 5 s")
	}
	_, owner, survivor := startEtcdPair(t)
	if code := owner.Stop(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	clustertest.WaitFor(t, 5*time.Second, "the survivor owns the pool", func() bool {
		return strings.Contains(survivor.Log(), `msg="pool owned" pool=shared`)
	})
	if !strings.Contains(survivor.Log(), `msg="pool owned" pool=shared how=handoff`) {
		t.Errorf("the survivor did not continue the pool from a handoff:\n%s\nstopped node:\n%s", survivor.Log(), owner.Log())
	}
}
