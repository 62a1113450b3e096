package main_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quotad/quotad/internal/testnode"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// TestConfigEditAppliesLive edits the pool file under a running node: a good edit
// applies without losing the pool's leases, a bad one is refused and the last good
// config stays.
func TestConfigEditAppliesLive(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "quotad.yaml")
	write := func(s string) {
		t.Helper()
		// Write then rename, as editors do, so the node never reads half a file.
		tmp := cfg + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cfg); err != nil {
			t.Fatal(err)
		}
	}
	write("pools:\n  - name: p\n    limits: [{resource: requests, amount: 100, per: 1m, initial: full}]\n")
	n := testnode.Start(t, "--config", cfg, "--config-interval", "20ms", "--metrics-listen", "")
	api := rawAPI(t, n.Addr)
	ctx := context.Background()
	g, err := api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "p"})
	if err != nil || !g.GetGranted() {
		t.Fatalf("acquire: %v %v", g, err)
	}
	status := func() *quotadv1.PoolStatus {
		st, err := api.GetPool(ctx, &quotadv1.GetPoolRequest{Pool: "p"})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	write("pools:\n  - name: p\n    limits: [{resource: requests, amount: 50, per: 1m}]\n")
	waitFor(t, 5*time.Second, "the new limit", func() bool { return status().GetLimits()[0].GetAmount() == 50 })
	st := status()
	if st.GetInFlight() != 1 {
		t.Errorf("in_flight %d after the edit, want the open lease kept", st.GetInFlight())
	}
	// 99 of 100 scaled to a capacity of 50 is 49.5: the level keeps its fraction.
	if level := st.GetLimits()[0].GetLevel(); level < 49 || level > 50 {
		t.Errorf("level %d after halving the limit, want 49", level)
	}

	write("pools:\n  - name: p\n    limits: [{resource: requests, amount: -5, per: 1m}]\n")
	waitFor(t, 5*time.Second, "the bad edit to be refused", func() bool {
		return strings.Contains(n.Log(), "config update rejected")
	})
	if !strings.Contains(n.Log(), "amount") {
		t.Errorf("the refusal does not name the field:\n%s", n.Log())
	}
	if amount := status().GetLimits()[0].GetAmount(); amount != 50 {
		t.Errorf("amount %d after a bad edit, want the last good 50", amount)
	}
	if _, err := api.Report(ctx, &quotadv1.ReportRequest{Pool: "p", GrantId: g.GetGrantId()}); err != nil {
		t.Errorf("report after the edits: %v", err)
	}
}
