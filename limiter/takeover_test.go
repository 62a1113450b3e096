package limiter

import (
	"testing"
	"time"
)

func TestTakeOverNeverStartsFull(t *testing.T) {
	p, err := NewPool(Config{
		Limits: []Limit{
			{Resource: Requests, Amount: 60, Period: time.Minute, Initial: 1},
			{Resource: Requests, Amount: 10000, Period: 24 * time.Hour, Initial: 1},
			{Resource: Tokens, Amount: 1000, Period: time.Minute, Initial: 0.5},
		},
		Concurrent: 4,
		LeaseTTL:   time.Second,
	}, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	d, err := p.Acquire(0, Request{Cost: Cost{Requests: 1}})
	if err != nil || !d.Granted {
		t.Fatalf("acquire: %+v %v", d, err)
	}
	seq := p.nextSeq
	p.TakeOver(0)
	s := p.Status(0)
	// requests: the minute bucket held 59, the tightest; both lose 59.
	if got := s.Limits[0].Level; got != 0 {
		t.Errorf("requests per minute %d after takeover, want 0", got)
	}
	if got := s.Limits[1].Level; got != 10000-1-59 {
		t.Errorf("requests per day %d after takeover, want %d (a minute's worth lost)", got, 10000-1-59)
	}
	if got := s.Limits[2].Level; got != 0 {
		t.Errorf("tokens %d after takeover, want 0", got)
	}
	if p.nextSeq < seq+takeoverSeqGap {
		t.Errorf("sequence %d did not skip ahead of %d", p.nextSeq, seq)
	}
	// Three free slots are phantoms for one lease: nothing is granted before then
	// but through the open lease's expiry.
	if p.canPay(int64(500*time.Millisecond), Cost{}) {
		t.Error("a phantom slot was granted")
	}
	if p.phantoms != 3 || p.phantomUntil != int64(time.Second) {
		t.Errorf("phantoms %d until %v, want 3 until 1s", p.phantoms, time.Duration(p.phantomUntil))
	}
	p.Advance(int64(time.Second))
	if p.phantoms != 0 {
		t.Errorf("phantoms %d after one lease", p.phantoms)
	}
}

// A try-only call refused for a phantom slot is told when the phantoms go, not to
// retry at once.
func TestTryOnlyRetryAfterCountsPhantoms(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 10, 1)}, Concurrent: 2, LeaseTTL: time.Second})
	p.TakeOver(0)
	d := acquire(t, p, 200*ms, tryOnly(reqs(1)))
	if d.Granted || d.RetryAfter != 800*time.Millisecond {
		t.Fatalf("try-only during phantoms = %+v, want refused with RetryAfter 800ms", d)
	}
}
