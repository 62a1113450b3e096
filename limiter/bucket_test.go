package limiter

import (
	"math"
	"testing"
	"time"
)

func TestMulDiv(t *testing.T) {
	for _, tc := range []struct {
		a, b, c int64
		up      bool
		want    int64
	}{
		{7, 3, 2, false, 10},
		{7, 3, 2, true, 11},
		{6, 3, 2, false, 9},
		{6, 3, 2, true, 9},
		{1, 1, 3, false, 0},
		{1, 1, 3, true, 1},
		// 2M tokens over a day: the product (1.728e20) overflows int64, the quotient does not.
		{2_000_000, int64(24 * time.Hour), 2_000_000, false, int64(24 * time.Hour)},
		{1_999_999, int64(24 * time.Hour), 2_000_000, true, 86_399_956_800_000},
		{1, int64(24 * time.Hour), 2_000_001, false, 43_199_978},
		{1, int64(24 * time.Hour), 2_000_001, true, 43_199_979},
		// Saturation: a quotient beyond 64 bits, or at or beyond never.
		{math.MaxInt64, math.MaxInt64, 1, false, never},
		{1 << 62, 4, 1, true, never},
		{never, 1, 1, false, never},
		{never - 1, 1, 1, false, never - 1},
		{never, 2, 2, false, never},
		{math.MaxInt64, math.MaxInt64, math.MaxInt64, false, math.MaxInt64 / 4},
	} {
		if got := mulDiv(tc.a, tc.b, tc.c, tc.up); got != tc.want {
			t.Errorf("mulDiv(%d, %d, %d, up=%v) = %d, want %d", tc.a, tc.b, tc.c, tc.up, got, tc.want)
		}
	}
}

func TestBucketRateConversions(t *testing.T) {
	// 3 per second: one unit is 333,333,333.33 ns of refill.
	r, ok := newBucketRate(Limit{Resource: Requests, Amount: 3, Period: time.Second})
	if !ok {
		t.Fatal("newBucketRate: not ok")
	}
	if r.capNs != sec {
		t.Fatalf("capNs = %d, want %d", r.capNs, sec)
	}
	for _, tc := range []struct {
		name string
		f    func(int64) int64
		in   int64
		want int64
	}{
		{"nsFor(1)", r.nsFor, 1, 333_333_334},
		{"nsFor(2)", r.nsFor, 2, 666_666_667},
		{"nsFor(3)", r.nsFor, 3, sec},
		{"nsFor(0)", r.nsFor, 0, 0},
		{"nsFor(-1)", r.nsFor, -1, 0},
		{"nsRefund(1)", r.nsRefund, 1, 333_333_333},
		{"nsRefund(2)", r.nsRefund, 2, 666_666_666},
		{"nsRefund(0)", r.nsRefund, 0, 0},
		{"nsRefund(-5)", r.nsRefund, -5, 0},
		{"unitsInUp(1)", r.unitsInUp, 1, 1},
		{"unitsInUp(333_333_334)", r.unitsInUp, 333_333_334, 2},
		{"unitsInUp(0)", r.unitsInUp, 0, 0},
		{"nsFor(MaxUnits)", r.nsFor, MaxUnits, never},
	} {
		if got := tc.f(tc.in); got != tc.want {
			t.Errorf("%s = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestNewBucketRate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		l     Limit
		ok    bool
		capNs int64
	}{
		{"10/s burst 2", perSecond(10, 2, 0), true, 200 * ms},
		{"2M tokens/day", Limit{Resource: Tokens, Amount: 2_000_000, Period: 24 * time.Hour}, true, int64(24 * time.Hour)},
		{"2M tokens/day burst 1M", Limit{Resource: Tokens, Amount: 2_000_000, Period: 24 * time.Hour, Capacity: 1_000_000}, true, int64(12 * time.Hour)},
		{"1/day burst 1e6", Limit{Resource: Requests, Amount: 1, Period: 24 * time.Hour, Capacity: 1_000_000}, false, 0},
		{"zero amount", Limit{Resource: Requests, Period: time.Second}, false, 0},
	} {
		r, ok := newBucketRate(tc.l)
		if ok != tc.ok || ok && r.capNs != tc.capNs {
			t.Errorf("%s: newBucketRate = %+v, %v; want capNs %d, ok %v", tc.name, r, ok, tc.capNs, tc.ok)
		}
	}
}

func TestBucketReadyAtExact(t *testing.T) {
	// 10 requests per second, burst 2, full at 0.
	r, _ := newBucketRate(perSecond(10, 2, 1))
	b := bucket{rate: r, full: 0}
	one := r.nsFor(1)
	if one != 100*ms {
		t.Fatalf("nsFor(1) = %d", one)
	}
	for i := range 2 {
		if at := b.readyAt(0, one); at != 0 {
			t.Fatalf("take %d: readyAt = %d, want 0", i, at)
		}
		b.debit(0, one)
	}
	if at := b.readyAt(0, one); at != 100*ms {
		t.Fatalf("third: readyAt = %d, want exactly %d", at, 100*ms)
	}
	if at := b.readyAt(0, 2*one); at != 200*ms {
		t.Fatalf("two more: readyAt = %d, want %d", at, 200*ms)
	}
	if lv := b.level(100*ms - 1); lv != 0 {
		t.Fatalf("level 1ns before = %d, want 0", lv)
	}
	if lv := b.level(100 * ms); lv != 1 {
		t.Fatalf("level at 100ms = %d, want 1", lv)
	}
	// readyAt never answers before now.
	if at := b.readyAt(time.Hour.Nanoseconds(), one); at != time.Hour.Nanoseconds() {
		t.Fatalf("readyAt later = %d", at)
	}
}

func TestBucketDebtAndRefund(t *testing.T) {
	r, _ := newBucketRate(perSecond(10, 2, 1)) // 100ms per unit, capNs 200ms
	b := bucket{rate: r, full: 0}
	b.debit(0, r.nsFor(5)) // 2 - 5 = -3
	if lv := b.level(0); lv != -3 {
		t.Fatalf("level = %d, want -3", lv)
	}
	if lv := b.level(1); lv != -3 {
		t.Fatalf("level 1ns later = %d, want -3 (debt rounds up)", lv)
	}
	if d := b.deficit(0); d != 500*ms {
		t.Fatalf("deficit = %d", d)
	}
	if at := b.readyAt(0, r.nsFor(1)); at != 400*ms {
		t.Fatalf("readyAt in debt = %d, want %d", at, 400*ms)
	}
	b.refund(0, r.nsRefund(4)) // -3 + 4 = 1
	if lv := b.level(0); lv != 1 {
		t.Fatalf("level after refund = %d, want 1", lv)
	}
	b.refund(0, r.nsRefund(10)) // capped at the capacity
	if lv, d := b.level(0), b.deficit(0); lv != 2 || d != 0 {
		t.Fatalf("level after a large refund = %d (deficit %d), want 2", lv, d)
	}
	// A debit on a bucket that has been full for a while starts from now.
	b.debit(time.Hour.Nanoseconds(), r.nsFor(1))
	if lv := b.level(time.Hour.Nanoseconds()); lv != 1 {
		t.Fatalf("level = %d, want 1", lv)
	}
	// A debit saturates at never instead of overflowing.
	b.debit(0, never)
	b.debit(0, never)
	if b.full != never {
		t.Fatalf("full = %d, want never", b.full)
	}
}

// A day's limit of 2M tokens: 2M x 86400e9 overflows int64, yet grants and waits
// are exact.
func TestDailyTokenLimit(t *testing.T) {
	day := Limit{Resource: Tokens, Amount: 2_000_000, Period: 24 * time.Hour, Initial: 1}
	p := newTestPool(t, Config{Limits: []Limit{day}})
	mustGrant(t, p, 0, Request{Cost: Cost{InputTokens: 1_500_000, OutputTokens: 500_000}})
	wantLevels(t, p, 0, 0)
	d := acquire(t, p, 0, tryOnly(Cost{InputTokens: 1}))
	if d.Granted || d.RetryAfter != 43_200_000 {
		t.Fatalf("one more token: %+v, want RetryAfter 43.2ms", d)
	}
	d = acquire(t, p, 0, tryOnly(Cost{InputTokens: 1_000_000}))
	if d.Granted || d.RetryAfter != 12*time.Hour {
		t.Fatalf("half the day: %+v, want RetryAfter 12h", d)
	}
	wantLevels(t, p, int64(6*time.Hour), 500_000)
	wantLevels(t, p, int64(24*time.Hour), 2_000_000)
}
