package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/quotad/quotad/internal/clock"
	"github.com/quotad/quotad/limiter"
)

func clusteredPools(t *testing.T, lim *limiter.Limiter, n int) {
	t.Helper()
	cfgs := map[string]limiter.Config{}
	for i := range n {
		cfgs[fmt.Sprintf("p%d", i)] = limiter.Config{Limits: []limiter.Limit{{Resource: limiter.Requests, Amount: 10, Period: time.Second}}}
	}
	if err := lim.Apply(cfgs); err != nil {
		t.Fatal(err)
	}
}

// TestLeaveWhileReconciling: Leave runs while the node's own loop reconciles
// (here every millisecond, with pools still being taken over). After Leave the
// node serves no pool: it announced it was draining, so peers take its pools at
// once, and a pool it took over meanwhile would be granted by two nodes.
func TestLeaveWhileReconciling(t *testing.T) {
	for i := range 20 {
		lim := limiter.NewClustered(clock.Real())
		clusteredPools(t, lim, 100)
		n, err := StartNode(lim, "127.0.0.1:1", NodeConfig{
			Gossip:         MembershipConfig{Bind: "127.0.0.1:0"},
			Fence:          QuorumConfig{FenceAfter: 20 * time.Millisecond, Margin: 5 * time.Millisecond},
			HeartbeatEvery: time.Millisecond,
			Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		for n.Status().Owned < 100 {
			time.Sleep(time.Millisecond)
		}
		clusteredPools(t, lim, 300) // 200 more to take over
		time.Sleep(time.Duration(i%4) * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := n.Leave(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		for _, pool := range lim.Pools() {
			if lim.Owned(pool) {
				t.Fatalf("round %d: pool %s still served after Leave", i, pool)
			}
		}
		lim.Close()
	}
}

// TestPoolRemovedAndAddedBackIsServed: a pool removed from the configuration and
// added back between two reconciliations is a new, unowned pool in the engine;
// the node takes it over again instead of renewing the old one's lease.
func TestPoolRemovedAndAddedBackIsServed(t *testing.T) {
	lim := limiter.NewClustered(clock.Real())
	defer lim.Close()
	clusteredPools(t, lim, 1)
	n, err := StartNode(lim, "127.0.0.1:1", NodeConfig{
		Gossip:         MembershipConfig{Bind: "127.0.0.1:0"},
		Fence:          QuorumConfig{FenceAfter: 10 * time.Millisecond, Margin: 5 * time.Millisecond},
		HeartbeatEvery: time.Hour, // reconciled by hand
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(false)
	for !lim.Owned("p0") {
		n.reconcile()
		time.Sleep(time.Millisecond)
	}
	clusteredPools(t, lim, 0)
	clusteredPools(t, lim, 1)
	n.reconcile()
	if !lim.Owned("p0") {
		t.Fatal("the pool added back is not served")
	}
}
