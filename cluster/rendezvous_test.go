package cluster

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

func TestOwnerIsFirstOfRank(t *testing.T) {
	members := []string{"a", "b", "c", "d"}
	for i := range 200 {
		pool := fmt.Sprintf("pool-%d", i)
		if got, want := Owner(pool, members), Rank(pool, members)[0]; got != want {
			t.Fatalf("%s: Owner %s, Rank first %s", pool, got, want)
		}
		reversed := slices.Clone(members)
		slices.Reverse(reversed)
		if !slices.Equal(Rank(pool, members), Rank(pool, reversed)) {
			t.Fatalf("%s: rank depends on the order of members", pool)
		}
	}
	if Owner("p", nil) != "" {
		t.Error("owner of no members")
	}
}

func TestOwnershipSpreadsAndMovesMinimally(t *testing.T) {
	members := []string{"node-1", "node-2", "node-3"}
	const pools = 30000
	count := map[string]int{}
	moved := 0
	for i := range pools {
		pool := fmt.Sprintf("openai/team-%d/gpt-4o", i)
		owner := Owner(pool, members)
		count[owner]++
		// Removing node-3 moves only node-3's pools, each to its second in rank.
		after := Owner(pool, members[:2])
		if owner != "node-3" && after != owner {
			t.Fatalf("%s moved from %s to %s when node-3 left", pool, owner, after)
		}
		if owner == "node-3" {
			moved++
			if after != Rank(pool, members)[1] {
				t.Fatalf("%s went to %s, not its second in rank", pool, after)
			}
		}
	}
	for m, n := range count {
		if share := float64(n) / pools; math.Abs(share-1.0/3) > 0.02 {
			t.Errorf("%s owns %.3f of the pools, want 1/3 +- 0.02", m, share)
		}
	}
	if moved != count["node-3"] {
		t.Errorf("moved %d, node-3 owned %d", moved, count["node-3"])
	}
}
