package providersim

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestBucketRefillsContinuouslyUpToCapacity(t *testing.T) {
	b := newBucket(60, 60, time.Minute, t0) // 1 token per second
	b.add(-60)
	b.advance(t0.Add(1500 * time.Millisecond))
	if b.level != 1 || b.frac != uint64(30*time.Second) {
		t.Fatalf("after 1.5s: level %d frac %d, want 1 and half a token", b.level, b.frac)
	}
	if got := b.until(2); got != 500*time.Millisecond {
		t.Fatalf("until(2) = %v, want 500ms", got)
	}
	b.advance(t0.Add(2 * time.Second))
	if b.level != 2 || b.frac != 0 {
		t.Fatalf("after 2s: level %d frac %d, want exactly 2", b.level, b.frac)
	}
	b.advance(t0.Add(time.Hour))
	if b.level != 60 || b.until(60) != 0 {
		t.Fatalf("after an hour: level %d, want capacity 60", b.level)
	}
}

func TestBucketUntilRoundsUpToTheNanosecond(t *testing.T) {
	b := newBucket(7, 7, time.Second, t0) // one token every 142857142.857ns
	b.add(-7)
	if got, want := b.until(1), time.Duration(142857143); got != want {
		t.Fatalf("until(1) = %v, want %v", got, want)
	}
	b.advance(t0.Add(142857142))
	if b.level != 0 {
		t.Fatalf("1ns early: level %d, want 0", b.level)
	}
	b.advance(t0.Add(142857143))
	if b.level != 1 {
		t.Fatalf("on time: level %d, want 1", b.level)
	}
}

func TestBucketDebtAndRefundCap(t *testing.T) {
	b := newBucket(100, 100, time.Minute, t0)
	b.add(-150)
	if b.remaining() != 0 || b.used() != 150 {
		t.Fatalf("in debt: remaining %d used %d, want 0 and 150", b.remaining(), b.used())
	}
	if got := b.until(100); got != 90*time.Second {
		t.Fatalf("until full from -50 = %v, want 1m30s", got)
	}
	b.add(1000)
	if b.level != 100 {
		t.Fatalf("refund past capacity: level %d, want 100", b.level)
	}
}

func TestBucketBurstAboveLimit(t *testing.T) {
	b := newBucket(10, 30, time.Second, t0)
	b.add(-30)
	if got := b.until(30); got != 3*time.Second {
		t.Fatalf("until full = %v, want 3s (30 tokens at 10/s)", got)
	}
}

func TestBucketHugeValuesDoNotOverflow(t *testing.T) {
	b := newBucket(150_000_000, 150_000_000, 24*time.Hour, t0)
	b.add(-150_000_000)
	if got := b.until(150_000_000); got != 24*time.Hour {
		t.Fatalf("until full = %v, want 24h", got)
	}
	b.advance(t0.Add(12 * time.Hour))
	if b.level != 75_000_000 {
		t.Fatalf("after 12h: level %d, want 75000000", b.level)
	}
	b.advance(t0.Add(-time.Hour)) // backwards: no change
	if b.level != 75_000_000 {
		t.Fatalf("after a backward clock: level %d", b.level)
	}
}
