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
	s := p.Status(0)
	if got := s.Limits[0].Level; got != 550 {
		t.Errorf("minute level %d, want 600 - 50 granted since = 550", got)
	}
	if got := s.Limits[1].Level; got != 100000-150 {
		t.Errorf("daily level %d: feedback must not touch a daily bucket", got)
	}
	// A provider that says more remains never raises the level.
	p.Observe(0, seq, []ProviderView{{Resource: Tokens, Remaining: 1000}})
	if got := p.Status(0).Limits[0].Level; got != 550 {
		t.Errorf("level %d after a higher remaining, want 550 kept", got)
	}
}

func TestObserveFollowsALowerProviderLimit(t *testing.T) {
	p := feedbackPool(t)
	seq := grantNow(t, p, 0, 100)
	p.Observe(0, seq, []ProviderView{{Resource: Tokens, Limit: 500}})
	s := p.Status(0)
	if l := s.Limits[0]; l.Amount != 500 || l.Capacity != 500 || l.ProviderLimit != 500 {
		t.Fatalf("limit after the provider said 500: %+v", l)
	}
	// Unconfirmed for ProviderLimitTTL, the configured limit comes back.
	if l := p.Status(int64(ProviderLimitTTL)).Limits[0]; l.Amount != 1000 || l.ProviderLimit != 0 {
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

// Every config snapshot reconfigures every pool; a pool whose own definition did
// not change keeps what the provider taught it.
func TestUnchangedConfigKeepsProviderFeedback(t *testing.T) {
	l, _ := newTestLimiter(t, Config{Limits: []Limit{{Resource: Tokens, Amount: 1000, Period: time.Minute, Initial: 1}}})
	other := Config{Limits: []Limit{perSecond(10, 0, 1)}}
	cfg := Config{Limits: []Limit{{Resource: Tokens, Amount: 1000, Period: time.Minute, Initial: 1}}}
	if err := l.Apply(map[string]Config{"p": cfg, "q": other}); err != nil {
		t.Fatal(err)
	}
	fb := Feedback{Views: []ProviderView{{Resource: Tokens, Limit: 500, Remaining: -1}}, Exhausted: "insufficient_quota", ExhaustedFor: time.Minute}
	if _, err := l.ReportWithFeedback("p", GrantID{}, Usage{}, Success, 0, fb); err != nil {
		t.Fatal(err)
	}
	// Another pool's definition changes: p's is the same.
	other = Config{Limits: []Limit{perSecond(20, 0, 1)}}
	if err := l.Apply(map[string]Config{"p": cfg, "q": other}); err != nil {
		t.Fatal(err)
	}
	s, err := l.Status("p")
	if err != nil {
		t.Fatal(err)
	}
	if lim := s.Limits[0]; lim.ProviderLimit != 500 || lim.Amount != 500 {
		t.Errorf("provider limit lost on an unrelated config change: %v", lim)
	}
	if s.QuotaExhausted == "" {
		t.Errorf("quota exhaustion lost on an unrelated config change: %v", s)
	}
	// A change of p's own definition is the operator's answer.
	cfg = Config{Limits: []Limit{{Resource: Tokens, Amount: 900, Period: time.Minute, Initial: 1}}}
	if err := l.Apply(map[string]Config{"p": cfg, "q": other}); err != nil {
		t.Fatal(err)
	}
	if s, _ := l.Status("p"); s.QuotaExhausted != "" || s.Limits[0].Amount != 900 {
		t.Errorf("after p's config changed: %v", s)
	}
}

// A provider limit below a waiter's cost makes that cost one the pool can never
// grant: the waiter fails as a new call would, rather than waiting forever.
func TestLowerProviderLimitFailsWaitersThatNoLongerFit(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{{Resource: Tokens, Amount: 1000, Period: time.Minute}}})
	big := mustQueue(t, p, 0, wait("", toks(800, 0)))
	small := mustQueue(t, p, 0, wait("", toks(100, 0)))
	p.Observe(0, 0, []ProviderView{{Resource: Tokens, Limit: 500, Remaining: -1}})
	wantState(t, big, waiterFailed)
	wantErr(t, big.err, ErrCostTooLarge)
	wantState(t, small, waiting)
	if wake := p.NextWake(0); wake <= 0 || wake >= never {
		t.Fatalf("next wake %v after the provider limit, want a finite instant", time.Duration(wake))
	}
}

// The provider's lower limit is in force for the refill too, not only for the
// capacity.
func TestLowerProviderLimitRefillsAtTheProviderRate(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{{Resource: Tokens, Amount: 1000, Period: time.Minute, Initial: 1}}})
	p.Observe(0, 0, []ProviderView{{Resource: Tokens, Limit: 500, Remaining: -1}})
	wantLevels(t, p, 0, 500)
	mustGrant(t, p, 0, tryOnly(toks(500, 0)))
	wantLevels(t, p, 0, 0)
	wantLevels(t, p, 30*sec, 250) // 500 per minute
	wantLevels(t, p, 60*sec, 500)
}

// The headroom a clamp holds back is the share of the provider's limit the pool's
// amount leaves out, not the gap to a burst set smaller than the amount.
func TestClampReservesTheHeadroomNotTheBurstGap(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{{Resource: Tokens, Amount: 9600, Capacity: 2000, Period: time.Minute, Initial: 1}}})
	seq := grantNow(t, p, 0, 100) // level 1900
	// The provider's 10000 has 9000 left: 400 of it is headroom, 8600 is more than
	// the pool's bucket holds anyway.
	p.Observe(0, seq, []ProviderView{{Resource: Tokens, Limit: 10000, Remaining: 9000}})
	wantLevels(t, p, 0, 1900)
	// With 1000 left, the pool may take 1000 - 400 of headroom.
	p.Observe(0, seq, []ProviderView{{Resource: Tokens, Limit: 10000, Remaining: 1000}})
	wantLevels(t, p, 0, 600)
}

func TestObserveKeepsTheRefillSinceTheGrant(t *testing.T) {
	p := feedbackPool(t)
	seq := grantNow(t, p, 0, 100)
	// The answer arrives 10 s after the grant: the provider's 600 described the
	// admission, and 166.7 tokens have refilled since.
	p.Observe(int64(10*time.Second), seq, []ProviderView{{Resource: Tokens, Limit: 1000, Remaining: 600}})
	if got := p.Status(int64(10 * time.Second)).Limits[0].Level; got != 766 {
		t.Errorf("level %d, want 600 + 166 refilled since the grant", got)
	}
}

func TestObserveCountsRefundsSinceTheGrant(t *testing.T) {
	p := feedbackPool(t)
	seqA := grantNow(t, p, 0, 100)
	seqB := grantNow(t, p, 0, 300) // granted after A: the provider has not seen it
	if _, err := p.Report(0, seqB, Usage{InputTokens: 100}, Success, 0); err != nil {
		t.Fatal(err)
	}
	// The provider said 600 remained after A. Since A: B took 300 and gave 200 back.
	p.Observe(0, seqA, []ProviderView{{Resource: Tokens, Limit: 1000, Remaining: 600}})
	if got := p.Status(0).Limits[0].Level; got != 500 {
		t.Errorf("level %d, want 600 - 300 + 200 = 500", got)
	}
}
