package driver

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/quotad/quotad/internal/testnode"
)

// TestClusterAccuracySmoke runs a short accuracy load against a 3-node cluster
// (quotad processes): the pool must never grant more than its limit (the
// reference bucket never below its slack) and must grant most of it.
func TestClusterAccuracySmoke(t *testing.T) {
	bin := testnode.Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := ClusterLoad{Name: "cluster-smoke", Nodes: 3, WorkersPerNode: 4, Limit: 200, Period: 2 * time.Second,
		Duration: 4 * time.Second}
	res, err := RunClusterLoad(ctx, cl, bin, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("formed after %v; granted %d of %.1f allowed (%.1f%%), windows %v, lowest level %+.2f, quotad counted %d, errors %v",
		res.FormedAfter, res.Granted, res.Allowed, 100*res.Ratio, res.Windows, res.Replay.MinLevel, res.ServerGrants, res.Errors)
	if res.Replay.OverLimit != 0 {
		t.Errorf("granted %d over the limit (lowest level of the reference bucket %+.2f at %v, slack %.1f)",
			res.Replay.OverLimit, res.Replay.MinLevel, res.Replay.MinAt, res.Replay.Slack)
	}
	if res.Granted > int(math.Ceil(res.Allowed+res.Replay.Slack)) {
		t.Errorf("granted %d, more than the %.1f allowed", res.Granted, res.Allowed)
	}
	// The machine may be slow (the race detector, other tests): only most of
	// the limit is required.
	if res.Ratio < 0.8 {
		t.Errorf("granted %d of %.1f allowed (%.1f%%), want at least 80%%", res.Granted, res.Allowed, 100*res.Ratio)
	}
	if res.ServerGrants >= 0 && res.ServerGrants < int64(res.Granted) {
		t.Errorf("quotad counted %d grants, fewer than the %d the workers received", res.ServerGrants, res.Granted)
	}
}

func TestReplay(t *testing.T) {
	at := func(ms ...int) []clusterGrant {
		var gs []clusterGrant
		for _, m := range ms {
			gs = append(gs, clusterGrant{at: time.Duration(m) * time.Millisecond})
		}
		return gs
	}
	// 100 per second, empty at 0: a grant every 10 ms is exactly the limit.
	r := replay(at(10, 20, 30, 40), 0, 100, 1000)
	if math.Abs(r.MinLevel) > 1e-9 || r.OverLimit != 0 {
		t.Errorf("at the limit: %+v", r)
	}
	// Four grants at 10 ms: three too many, less the slack of 2 (1 unit and
	// 10 ms of refill).
	r = replay(at(10, 10, 10, 10), 0, 100, 1000)
	if math.Abs(r.MinLevel+3) > 1e-9 || r.OverLimit != 1 || r.MinAt != 10*time.Millisecond {
		t.Errorf("over the limit: %+v", r)
	}
	// The bucket holds at most its capacity: after 10 s idle, 5 grants at once
	// with capacity 3 go 2 below zero.
	r = replay(at(10000, 10000, 10000, 10000, 10000), 0, 100, 3)
	if math.Abs(r.MinLevel+2) > 1e-9 || r.OverLimit != 0 {
		t.Errorf("capacity: %+v", r)
	}
}

func TestComputeClusterLoadEvent(t *testing.T) {
	cl := ClusterLoad{Limit: 100, Period: time.Second, Duration: 3 * time.Second, Event: EventKill, EventAt: time.Second}
	res := ClusterLoadResult{Scenario: cl}
	var gs []clusterGrant
	for ms := 10; ms <= 3000; ms += 10 {
		reign := "e-1"
		if ms > 1000 && ms < 1500 {
			continue // the pool moves
		}
		if ms >= 1500 {
			reign = "e-2"
		}
		gs = append(gs, clusterGrant{at: time.Duration(ms) * time.Millisecond, reign: reign})
	}
	computeClusterLoad(&res, gs, time.Second)
	ev := res.Event
	if ev.LastBefore != 0 || ev.FirstAfter != 500*time.Millisecond || ev.NewReignAfter != 500*time.Millisecond {
		t.Errorf("event: %+v", ev)
	}
	if ev.GrantedAfter != 151 || res.Granted != 251 || len(res.Windows) != 3 || res.Windows[0] != 99 || res.Windows[1] != 51 || res.Windows[2] != 101 {
		t.Errorf("counts: granted %d, after %d, windows %v", res.Granted, ev.GrantedAfter, res.Windows)
	}
	if res.Replay.OverLimit != 0 {
		t.Errorf("replay: %+v", res.Replay)
	}
}

func TestReignOf(t *testing.T) {
	for id, want := range map[string]string{"9f3a-42": "9f3a-0", "9f3a-16777258": "9f3a-1", "bad": "bad"} {
		if got := reignOf(id); got != want {
			t.Errorf("reignOf(%q) = %q, want %q", id, got, want)
		}
	}
}

// testWriter writes progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
