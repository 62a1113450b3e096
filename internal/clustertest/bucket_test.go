package clustertest

import (
	"testing"
	"time"
)

func grantsAt(start time.Time, offsets ...time.Duration) []Grant {
	var gs []Grant
	for _, d := range offsets {
		gs = append(gs, Grant{At: start.Add(d)})
	}
	return gs
}

func TestReplayBucket(t *testing.T) {
	start := time.Now()
	ms := time.Millisecond
	// 10/s, capacity 2, full: two at once, then one every 100ms, is exactly the limit.
	exact := grantsAt(start, 0, 0, 100*ms, 200*ms, 300*ms)
	if r := ReplayBucket(exact, start, 10, 2, 2); !r.OK() || r.Lowest > 1e-9 {
		t.Errorf("exact use: %v, want lowest 0", r)
	}
	// One more within the same 300ms overdraws by one.
	over := grantsAt(start, 0, 0, 100*ms, 200*ms, 250*ms, 300*ms)
	r := ReplayBucket(over, start, 10, 2, 2)
	if r.OK() || r.Excess < 0.99 || r.Excess > 1.01 || r.At != 300*ms {
		t.Errorf("one too many: %v, excess %v, want 1 at 300ms", r, r.Excess)
	}
	// Starting empty, the first grant has to wait for the refill.
	if r := ReplayBucket(grantsAt(start, 50*ms), start, 10, 2, 0); r.OK() {
		t.Errorf("grant before the first refill passed: %v", r)
	}
	// An idle bucket refills to its capacity, not beyond.
	burst := grantsAt(start, time.Second, time.Second, time.Second)
	if r := ReplayBucket(burst, start, 10, 2, 0); r.OK() {
		t.Errorf("three at once from a bucket of two passed: %v", r)
	}
}

func TestGaps(t *testing.T) {
	start := time.Now()
	ms := time.Millisecond
	gs := grantsAt(start, 0, 100*ms, 900*ms, 1000*ms)
	if gap, began := MaxGap(gs, start.Add(150*ms), start.Add(950*ms)); gap != 800*ms || !began.Equal(start.Add(100*ms)) {
		t.Errorf("MaxGap = %v from %v, want 800ms from 100ms", gap, began.Sub(start))
	}
	if gap, _ := MaxGap(gs, start.Add(1100*ms), start.Add(2*time.Second)); gap != time.Second {
		t.Errorf("MaxGap with no grant after = %v, want 1s (last grant to the end)", gap)
	}
	if g, ok := FirstAfter(gs, start.Add(100*ms)); !ok || g.At.Sub(start) != 900*ms {
		t.Errorf("FirstAfter = %v %v", g.At.Sub(start), ok)
	}
	if g, ok := LastBefore(gs, start.Add(100*ms)); !ok || g.At.Sub(start) != 100*ms {
		t.Errorf("LastBefore = %v %v", g.At.Sub(start), ok)
	}
	if n := CountBetween(gs, start.Add(100*ms), start.Add(time.Second)); n != 2 {
		t.Errorf("CountBetween = %d, want 2", n)
	}
}
