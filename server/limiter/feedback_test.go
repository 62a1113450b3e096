package limiter

import (
	"errors"
	"testing"
	"time"
)

func feedbackPool(t *testing.T) *Pool {
	t.Helper()
	p, err := NewPool(Config{Limits: []Limit{
		{Resource: Tokens, Amount: 1000, Period: time.Minute, Initial: 1},
		{Resource: Tokens, Amount: 100000, Period: 24 * time.Hour, Initial: 1},
	}}, 0, 7)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func grantNow(t *testing.T, p *Pool, now int64, tokens int64) uint64 {
	t.Helper()
	d, err := p.Acquire(now, Request{Cost: Cost{InputTokens: tokens}, MaxWait: 0})
	if err != nil || !d.Granted {
		t.Fatalf("acquire %d tokens: %+v %v", tokens, d, err)
	}
	return d.Grant.Seq
}

func TestObserveClampsDownToTheProvider(t *testing.T) {
	p := feedbackPool(t)
	seq := grantNow(t, p, 0, 100) // level 900
	grantNow(t, p, 0, 50)         // granted after seq: the provider has not seen it
	// The provider says 600 remain of its 1000 after seq's call.
	p.Observe(0, seq, []ProviderView{{Resource: Tokens, Limit: 1000, Remaining: 600}})
	s := p.Status(0, "p")
	if got := s.Limits[0].Level; got != 550 {
		t.Errorf("minute level %d, want 600 - 50 granted since = 550", got)
	}
	if got := s.Limits[1].Level; got != 100000-150 {
		t.Errorf("daily level %d: feedback must not touch a daily bucket", got)
	}
	// A provider that says more remains never raises the level.
	p.Observe(0, seq, []ProviderView{{Resource: Tokens, Remaining: 1000}})
	if got := p.Status(0, "p").Limits[0].Level; got != 550 {
		t.Errorf("level %d after a higher remaining, want 550 kept", got)
	}
}

func TestObserveFollowsALowerProviderLimit(t *testing.T) {
	p := feedbackPool(t)
	seq := grantNow(t, p, 0, 100)
	p.Observe(0, seq, []ProviderView{{Resource: Tokens, Limit: 500}})
	s := p.Status(0, "p")
	if l := s.Limits[0]; l.Amount != 500 || l.Capacity != 500 || l.ProviderLimit != 500 {
		t.Fatalf("limit after the provider said 500: %+v", l)
	}
	// Unconfirmed for ProviderLimitTTL, the configured limit comes back.
	if l := p.Status(int64(ProviderLimitTTL), "p").Limits[0]; l.Amount != 1000 || l.ProviderLimit != 0 {
		t.Errorf("limit after %v unconfirmed: %+v", ProviderLimitTTL, l)
	}
}

func TestExhaustQuotaFailsFast(t *testing.T) {
	p := feedbackPool(t)
	grantNow(t, p, 0, 1000)
	d, err := p.Acquire(0, Request{Cost: Cost{InputTokens: 10}, MaxWait: -1})
	if err != nil || d.Waiter == nil {
		t.Fatalf("want a waiter: %+v %v", d, err)
	}
	p.ExhaustQuota(0, "insufficient_quota", time.Minute)
	if !errors.Is(d.Waiter.err, ErrQuotaExhausted) {
		t.Errorf("waiter: %v, want ErrQuotaExhausted", d.Waiter.err)
	}
	if _, err := p.Acquire(int64(30*time.Second), Request{Cost: Cost{InputTokens: 1}}); !errors.Is(err, ErrQuotaExhausted) {
		t.Errorf("acquire during the pause: %v", err)
	}
	if _, err := p.Acquire(int64(time.Minute), Request{Cost: Cost{InputTokens: 1}, MaxWait: -1}); err != nil {
		t.Errorf("acquire after the pause: %v", err)
	}
}
