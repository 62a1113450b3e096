package limiter

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	statev1 "github.com/quotad/quotad/proto/quotad/state/v1"
)

func TestAcquireImmediateGrant(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 2, 1)}})
	d := acquire(t, p, 5*ms, wait("", Cost{}))
	want := Grant{Seq: 1, Epoch: 7, Cost: reqs(1), LeaseTTL: DefaultLeaseTTL}
	if !d.Granted || d.Seq != 1 || d.Waiter != nil || d.Grant != want {
		t.Fatalf("Acquire = %+v, want grant %+v", d, want)
	}
	if id := d.Grant.ID().String(); id != "7-1" {
		t.Fatalf("grant id %q", id)
	}
	s := status(p, 5*ms)
	if s.InFlight != 1 || s.Unsettled.Requests != 1 || s.Limits[0].Level != 1 {
		t.Fatalf("status = %v", s)
	}
}

func TestGrantDebitsEveryLimitOrNothing(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 10, 1), tokensPerMinute(100, 1)}})
	mustGrant(t, p, 0, Request{Cost: toks(30, 50)})
	wantLevels(t, p, 0, 9, 20)
	// 30 tokens do not fit: nothing is debited, not even the request.
	d := acquire(t, p, 0, tryOnly(toks(10, 20)))
	if d.Granted || d.RetryAfter != 6*time.Second { // 10 tokens at 100/min
		t.Fatalf("Acquire = %+v, want refusal with RetryAfter 6s", d)
	}
	wantLevels(t, p, 0, 9, 20)
	if s := status(p, 0); s.InFlight != 1 || s.Waiters != 0 {
		t.Fatalf("status = %v", s)
	}
}

func TestCostTooLarge(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 2, 1), tokensPerMinute(100, 1)}})
	for _, tc := range []struct {
		cost Cost
		msg  []string
	}{
		{toks(60, 41), []string{"tokens 101", "capacity 100"}},
		{Cost{Requests: 3}, []string{"requests 3", "capacity 2"}},
	} {
		_, err := p.Acquire(0, wait("", tc.cost))
		wantErr(t, err, ErrCostTooLarge)
		for _, m := range tc.msg {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("error %q does not name %q", err, m)
			}
		}
	}
	if s := status(p, 0); s.Waiters != 0 || s.NextSequence != 1 || s.InFlight != 0 {
		t.Fatalf("a refused cost changed the pool: %v", s)
	}
}

func TestInvalidCost(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{tokensPerMinute(100, 1)}})
	for _, c := range []Cost{{Requests: -1}, {InputTokens: -1}, {OutputTokens: MaxUnits + 1}} {
		_, err := p.Acquire(0, wait("", c))
		wantErr(t, err, ErrInvalidCost)
	}
}

func TestTryOnlyRetryAfterExact(t *testing.T) {
	for _, tc := range []struct {
		name    string
		limits  []Limit
		taken   Cost // granted first, at 0
		cost    Cost
		at      int64
		granted bool
		retry   time.Duration
	}{
		{"empty 10/s", []Limit{perSecond(10, 2, 0)}, Cost{}, reqs(1), 0, false, 100 * time.Millisecond},
		{"empty 10/s, two", []Limit{perSecond(10, 2, 0)}, Cost{}, reqs(2), 0, false, 200 * time.Millisecond},
		{"empty 10/s, 1ns short", []Limit{perSecond(10, 2, 0)}, Cost{}, reqs(1), 100*ms - 1, false, 1},
		{"empty 10/s, just in time", []Limit{perSecond(10, 2, 0)}, Cost{}, reqs(1), 100 * ms, true, 0},
		{"3/s rounds up", []Limit{perSecond(3, 1, 0)}, Cost{}, reqs(1), 0, false, 333_333_334},
		{"burst used", []Limit{perSecond(10, 2, 1)}, reqs(2), reqs(1), 0, false, 100 * time.Millisecond},
		{"tokens bind", []Limit{perSecond(10, 10, 1), tokensPerMinute(1000, 1)}, toks(900, 0), toks(150, 0), 0, false, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPool(t, Config{Limits: tc.limits})
			if tc.taken != (Cost{}) {
				mustGrant(t, p, 0, tryOnly(tc.taken))
			}
			d := acquire(t, p, tc.at, tryOnly(tc.cost))
			if d.Granted != tc.granted || d.RetryAfter != tc.retry || d.Waiter != nil {
				t.Fatalf("Acquire = %+v, want granted %v retry %v", d, tc.granted, tc.retry)
			}
			if s := status(p, tc.at); s.Waiters != 0 {
				t.Fatalf("try-only call queued: %v", s)
			}
		})
	}
}

func TestMaxWait(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 2, 0)}})
	d := acquire(t, p, 0, Request{Cost: reqs(1), MaxWait: 100*time.Millisecond - 1})
	if d.Granted || d.Waiter != nil || d.RetryAfter != 100*time.Millisecond {
		t.Fatalf("MaxWait 1ns short: %+v, want refusal with RetryAfter 100ms", d)
	}
	w := mustQueue(t, p, 0, Request{Cost: reqs(1), MaxWait: 100 * time.Millisecond})
	if wake := p.NextWake(0); wake != 100*ms {
		t.Fatalf("NextWake = %d, want %d", wake, 100*ms)
	}
	p.Advance(100*ms - 1)
	wantState(t, w, waiting)
	p.Advance(100 * ms)
	wantState(t, w, waiterGranted)
	if w.grant.Waited != 100*time.Millisecond || w.grant.Seq != w.seq {
		t.Fatalf("grant = %+v", w.grant)
	}
	if p.NextWake(100*ms) != 0 {
		t.Fatal("NextWake with an empty queue is not 0")
	}
}

// The predicted wait counts what the queue grants first, even when that is more
// than one bucketful.
func TestPredictedWaitCountsTheQueue(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 2, 0)}, MaxQueueWait: 450 * time.Millisecond})
	for range 3 {
		mustQueue(t, p, 0, wait("", reqs(1)))
	}
	// Three ahead and its own: granted at 400ms.
	w := mustQueue(t, p, 0, Request{Cost: reqs(1), MaxWait: 400 * time.Millisecond})
	d := acquire(t, p, 0, tryOnly(reqs(1)))
	if d.RetryAfter != 500*time.Millisecond {
		t.Fatalf("try-only behind 4 waiters: RetryAfter %v, want 500ms", d.RetryAfter)
	}
	_, err := p.Acquire(0, wait("", reqs(1)))
	wantErr(t, err, ErrQueueFull)
	if !strings.Contains(err.Error(), "max_queue_wait") {
		t.Fatalf("error %q does not name max_queue_wait", err)
	}
	order, at, _ := drain(t, p, 0, sec, []*Waiter{w})
	if len(order) != 1 || at[0] != 400*ms {
		t.Fatalf("granted at %v, want 400ms", at)
	}
}

func TestQueueBounds(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 2, 0)}, MaxWaiters: 2})
	mustQueue(t, p, 0, wait("", reqs(1)))
	mustQueue(t, p, 0, wait("b", reqs(1)))
	_, err := p.Acquire(0, wait("", reqs(1)))
	wantErr(t, err, ErrQueueFull)
	if !strings.Contains(err.Error(), "max_waiters") {
		t.Fatalf("error %q does not name max_waiters", err)
	}
	if s := status(p, 0); s.Waiters != 2 {
		t.Fatalf("waiters = %d", s.Waiters)
	}
}

// drain advances p wake by wake until the queue is empty or until, and returns the
// granted waiters of ws in grant order, with their grant times.
func drain(t testing.TB, p *Pool, now, until int64, ws []*Waiter) (order []*Waiter, at []int64, end int64) {
	t.Helper()
	done := make(map[*Waiter]bool)
	for {
		for _, w := range ws {
			if w.state == waiterGranted && !done[w] {
				done[w] = true
				order = append(order, w)
				at = append(at, now)
			}
		}
		wake := p.NextWake(now)
		if wake == 0 || wake > until {
			return order, at, now
		}
		if wake <= now {
			t.Fatalf("NextWake %d is not after now %d with waiters queued", wake, now)
		}
		now = wake
		p.Advance(now)
	}
}

func TestFIFOWithinTenant(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 2, 0)}})
	var ws []*Waiter
	for _, c := range []int64{2, 1, 1, 2, 1} {
		ws = append(ws, mustQueue(t, p, 0, wait("a", reqs(c))))
	}
	order, at, _ := drain(t, p, 0, 10*sec, ws)
	wantAt := []int64{200 * ms, 300 * ms, 400 * ms, 600 * ms, 700 * ms}
	for i, w := range order {
		if w != ws[i] || at[i] != wantAt[i] || w.grant.Seq != uint64(i+1) {
			t.Fatalf("grant %d: seq %d at %d, want seq %d at %d", i, w.seq, at[i], ws[i].seq, wantAt[i])
		}
	}
	if len(order) != len(ws) {
		t.Fatalf("%d of %d granted", len(order), len(ws))
	}
}

// Two tenants keep a saturated pool busy: their grants follow their weights.
func TestFairShareUnderSaturation(t *testing.T) {
	for _, tc := range []struct {
		name           string
		weights        map[string]int64
		costA, costB   Cost
		wantRatio      float64 // grants of a per grant of b
		limits         []Limit
		grantsObserved int
	}{
		{"weights 3:1", map[string]int64{"a": 3}, reqs(1), reqs(1), 3, []Limit{perSecond(10, 1, 0)}, 400},
		{"weights 3:1 burst 5", map[string]int64{"a": 3, "b": 1}, reqs(1), reqs(1), 3, []Limit{perSecond(10, 5, 0)}, 400},
		{"equal weights, b costs 3x", nil, toks(10, 0), toks(20, 10), 3, []Limit{perSecond(1000, 0, 1), tokensPerMinute(600, 0)}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPool(t, Config{Limits: tc.limits, TenantWeights: tc.weights, MaxWaiters: 10000})
			var ws []*Waiter
			for range tc.grantsObserved {
				ws = append(ws, mustQueue(t, p, 0, wait("a", tc.costA)), mustQueue(t, p, 0, wait("b", tc.costB)))
			}
			now, granted := int64(0), map[string]int{}
			for granted["a"]+granted["b"] < tc.grantsObserved {
				now = p.NextWake(now)
				if now == 0 {
					t.Fatal("queue ran dry")
				}
				p.Advance(now)
				granted = map[string]int{}
				for _, w := range ws {
					if w.state == waiterGranted {
						granted[w.tenant.name]++
					}
				}
			}
			ratio := float64(granted["a"]) / float64(granted["b"])
			t.Logf("grants a:b = %d:%d = %.3f", granted["a"], granted["b"], ratio)
			if ratio < tc.wantRatio*0.95 || ratio > tc.wantRatio*1.05 {
				t.Fatalf("grants a:b = %d:%d = %.3f, want %.1f +-5%%", granted["a"], granted["b"], ratio, tc.wantRatio)
			}
		})
	}
}

// A large cost waits its turn but is not starved by a stream of small ones, of its
// own tenant or of another.
func TestLargeCostNotStarved(t *testing.T) {
	for _, smallTenant := range []string{"big", "small"} {
		t.Run("small from "+smallTenant, func(t *testing.T) {
			p := newTestPool(t, Config{Limits: []Limit{tokensPerMinute(100, 0)}, MaxWaiters: 100000})
			for range 5 {
				mustQueue(t, p, 0, wait(smallTenant, toks(1, 0)))
			}
			big := mustQueue(t, p, 0, wait("big", toks(100, 0)))
			now := int64(0)
			for big.state == waiting && now < int64(time.Hour) {
				// Keep small ones coming, faster than the pool pays them.
				for range 2 {
					mustQueue(t, p, now, wait(smallTenant, toks(1, 0)))
				}
				now = p.NextWake(now)
				p.Advance(now)
			}
			wantState(t, big, waiterGranted)
			t.Logf("large cost granted at %v", time.Duration(now))
			// Its own tenant: FIFO, so only the 5 ahead go first (1 token each, then 100
			// tokens from empty): 105 tokens at 100/min = 63s. Another tenant: fair share
			// lets about one bucketful of small ones through first, then the large one
			// waits for a bucketful of its own.
			limit := 63 * sec
			if smallTenant != "big" {
				limit = 2 * 60 * sec
			}
			if now > limit {
				t.Fatalf("large cost granted at %v, want by %v", time.Duration(now), time.Duration(limit))
			}
			if smallTenant == "big" && now != limit {
				t.Fatalf("large cost granted at %v, want exactly %v", time.Duration(now), time.Duration(limit))
			}
		})
	}
}

func TestLeaveCancelsWithoutCharge(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 2, 0), tokensPerMinute(600, 1)}})
	w1 := mustQueue(t, p, 0, wait("", toks(100, 0)))
	w2 := mustQueue(t, p, 0, wait("", toks(50, 0)))
	before := levels(p, 10*ms)
	p.Leave(10*ms, w1)
	wantState(t, w1, waiterFailed)
	wantErr(t, w1.err, ErrCancelled)
	wantLevels(t, p, 10*ms, before...)
	if s := status(p, 10*ms); s.Waiters != 1 || s.InFlight != 0 {
		t.Fatalf("status = %v", s)
	}
	if wake := p.NextWake(10 * ms); wake != 100*ms {
		t.Fatalf("NextWake = %d, want %d (the next waiter's turn)", wake, 100*ms)
	}
	p.Advance(100 * ms)
	wantState(t, w2, waiterGranted)
	wantLevels(t, p, 100*ms, 0, 550)
}

func TestConcurrencyCap(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(1000, 0, 1)}, Concurrent: 2, LeaseTTL: 10 * time.Second})
	g1 := mustGrant(t, p, 0, wait("", reqs(1)))
	mustGrant(t, p, 1*sec, wait("", reqs(1)))
	d := acquire(t, p, 2*sec, tryOnly(reqs(1)))
	if d.Granted || d.RetryAfter != 8*time.Second {
		t.Fatalf("third call: %+v, want refusal with RetryAfter 8s (first lease expiry)", d)
	}
	w := mustQueue(t, p, 2*sec, wait("", reqs(1)))
	if wake := p.NextWake(2 * sec); wake != 10*sec {
		t.Fatalf("NextWake = %d, want %d", wake, 10*sec)
	}
	// A Report frees the slot sooner.
	report(t, p, 3*sec, g1.Seq, Usage{}, Success)
	wantState(t, w, waiterGranted)
	if w.grant.Waited != time.Second {
		t.Fatalf("waited %v", w.grant.Waited)
	}
	if s := status(p, 3*sec); s.InFlight != 2 {
		t.Fatalf("in flight %d", s.InFlight)
	}
}

func TestLeaseExpiry(t *testing.T) {
	ttl := 10 * sec
	p := newTestPool(t, Config{Limits: []Limit{tokensPerMinute(600, 1)}, Concurrent: 1, LeaseTTL: time.Duration(ttl)})
	g := mustGrant(t, p, 0, wait("", toks(100, 0)))
	w := mustQueue(t, p, 0, wait("", toks(10, 0)))
	if wake := p.NextWake(0); wake != ttl {
		t.Fatalf("NextWake = %d, want the lease expiry %d", wake, ttl)
	}
	p.Advance(ttl - 1)
	wantState(t, w, waiting)
	if s := status(p, ttl-1); s.InFlight != 1 || s.Tombstones != 0 || s.Unsettled.InputTokens != 100 {
		t.Fatalf("status 1ns before expiry = %v", s)
	}
	p.Advance(ttl)
	wantState(t, w, waiterGranted)
	s := status(p, ttl)
	if s.InFlight != 1 || s.Tombstones != 1 || s.Unsettled.InputTokens != 10 {
		t.Fatalf("status at expiry = %v", s)
	}
	// The expired estimate stays charged: 600 - 100 - 10 + 100 refilled in 10s.
	wantLevels(t, p, ttl, 590)
	_, err := p.Renew(ttl, g.Seq)
	wantErr(t, err, ErrGrantNotFound)
}

func TestRenew(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 0, 1)}, LeaseTTL: 10 * time.Second})
	g := mustGrant(t, p, 0, wait("", reqs(1)))
	ttl, err := p.Renew(5*sec, g.Seq)
	if err != nil || ttl != 10*time.Second {
		t.Fatalf("Renew = %v, %v", ttl, err)
	}
	if s := status(p, 15*sec-1); s.InFlight != 1 {
		t.Fatalf("lease gone before its renewed expiry: %v", s)
	}
	if s := status(p, 15*sec); s.InFlight != 0 || s.Tombstones != 1 {
		t.Fatalf("lease open after its renewed expiry: %v", s)
	}
	_, err = p.Renew(15*sec, g.Seq)
	wantErr(t, err, ErrGrantNotFound)
	_, err = p.Renew(15*sec, 99)
	wantErr(t, err, ErrGrantNotFound)
}

// Every call that lets a lease expire also grants the waiters it frees.
func TestLeaseExpiryInsideACallServesTheQueue(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(p *Pool, now int64, g Grant, other *Waiter)
	}{
		{"Renew", func(p *Pool, now int64, g Grant, _ *Waiter) { p.Renew(now, g.Seq) }},
		{"Leave of a retried waiter", func(p *Pool, now int64, _ Grant, other *Waiter) { p.Leave(now, other) }},
		{"Pause in the past", func(p *Pool, now int64, _ Grant, _ *Waiter) { p.Pause(now, now) }},
		{"Report", func(p *Pool, now int64, _ Grant, _ *Waiter) { p.Report(now, 1000, Usage{}, Success, 0) }},
		{"Acquire", func(p *Pool, now int64, _ Grant, _ *Waiter) { p.Acquire(now, tryOnly(reqs(1))) }},
		{"invalid Report", func(p *Pool, now int64, _ Grant, _ *Waiter) { p.Report(now, 1000, Usage{InputTokens: -1}, Success, 0) }},
		{"invalid Reconfigure", func(p *Pool, now int64, _ Grant, _ *Waiter) { p.Reconfigure(now, Config{Concurrent: -1}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPool(t, Config{Limits: []Limit{perSecond(1000, 0, 1)}, Concurrent: 1, LeaseTTL: time.Second})
			g := mustGrant(t, p, 0, wait("", reqs(1)))
			w := mustQueue(t, p, 0, Request{Tenant: "a", Cost: reqs(1), MaxWait: -1, RequestID: "r"})
			other := mustQueue(t, p, 0, Request{Tenant: "b", Cost: reqs(1), MaxWait: -1, RequestID: "s"})
			acquire(t, p, 0, Request{Tenant: "b", Cost: reqs(1), MaxWait: -1, RequestID: "s"}) // attached twice
			tc.call(p, sec, g, other)
			wantState(t, w, waiterGranted)
			if wake := p.NextWake(sec); wake <= sec {
				t.Fatalf("NextWake = %d: the queue's head is payable after the call", wake)
			}
		})
	}
}

func TestReportSettles(t *testing.T) {
	limits := []Limit{perSecond(10, 10, 1), tokensPerMinute(100, 1)}
	for _, tc := range []struct {
		name       string
		estimate   Cost
		usage      Usage
		outcome    Outcome
		charged    Cost
		wantLevels []int64
	}{
		{"refund", toks(10, 70), Usage{10, 10}, Success, toks(10, 10), []int64{9, 80}},
		{"exact", toks(10, 70), Usage{30, 50}, Success, toks(30, 50), []int64{9, 20}},
		{"excess", toks(10, 70), Usage{50, 50}, Success, toks(50, 50), []int64{9, 0}},
		{"not sent refunds the request", toks(10, 70), Usage{5, 5}, NotSent, Cost{}, []int64{10, 100}},
		{"failed without usage keeps the estimate", toks(10, 70), Usage{}, Failed, toks(10, 70), []int64{9, 20}},
		{"failed with usage", toks(10, 70), Usage{10, 0}, Failed, toks(10, 0), []int64{9, 90}},
		{"rate limited without usage", toks(10, 70), Usage{}, RateLimited, toks(10, 70), []int64{9, 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPool(t, Config{Limits: limits})
			g := mustGrant(t, p, 0, wait("", tc.estimate))
			res := report(t, p, 0, g.Seq, tc.usage, tc.outcome)
			if res.Settlement != Settled || res.Charged != tc.charged {
				t.Fatalf("Report = %+v, want Settled, charged %+v", res, tc.charged)
			}
			wantLevels(t, p, 0, tc.wantLevels...)
			s := status(p, 0)
			if s.InFlight != 0 || s.Tombstones != 1 || s.Unsettled.InputTokens != 0 {
				t.Fatalf("status = %v", s)
			}
			if debt := s.Limits[1].Debt; debt != max(-tc.wantLevels[1], 0) {
				t.Fatalf("debt = %d", debt)
			}
		})
	}
}

func TestDebtDelaysLaterGrants(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{tokensPerMinute(100, 1)}})
	g := mustGrant(t, p, 0, wait("", toks(80, 0)))
	mustGrant(t, p, 0, wait("", toks(20, 0)))
	report(t, p, 0, g.Seq, Usage{InputTokens: 100}, Success)
	wantLevels(t, p, 0, -20)
	// One token needs 21 of refill at 0.6s each.
	d := acquire(t, p, 0, tryOnly(toks(1, 0)))
	if d.Granted || d.RetryAfter != 12600*time.Millisecond {
		t.Fatalf("Acquire in debt = %+v, want RetryAfter 12.6s", d)
	}
	w := mustQueue(t, p, 0, wait("", toks(1, 0)))
	p.Advance(12600*ms - 1)
	wantState(t, w, waiting)
	p.Advance(12600 * ms)
	wantState(t, w, waiterGranted)
}

func TestReportTwiceChangesNothing(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{tokensPerMinute(100, 1)}})
	g := mustGrant(t, p, 0, wait("", toks(50, 0)))
	report(t, p, sec, g.Seq, Usage{InputTokens: 20}, RateLimited)
	before := status(p, 2*sec)
	res, err := p.Report(2*sec, g.Seq, Usage{InputTokens: 90}, RateLimited, time.Minute)
	if err != nil || res.Settlement != Duplicate || res.Charged != toks(20, 0) {
		t.Fatalf("second Report = %+v, %v; want Duplicate, charged 20", res, err)
	}
	if after := status(p, 2*sec); !reflect.DeepEqual(before, after) {
		t.Fatalf("a duplicate Report changed the pool:\nbefore %v\nafter  %v", before, after)
	}
}

func TestLateReportSettlesAgainstTombstone(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{tokensPerMinute(600, 1)}, LeaseTTL: time.Second, TombstoneTTL: 10 * time.Second})
	g := mustGrant(t, p, 0, wait("", toks(100, 0)))
	wantLevels(t, p, sec, 510) // expired: the estimate stands, 10 refilled
	res := report(t, p, sec, g.Seq, Usage{InputTokens: 40}, Success)
	if res.Settlement != SettledLate || res.Charged != toks(40, 0) {
		t.Fatalf("late Report = %+v", res)
	}
	wantLevels(t, p, sec, 570)
	if res := report(t, p, 2*sec, g.Seq, Usage{InputTokens: 40}, Success); res.Settlement != Duplicate {
		t.Fatalf("Report after the late one = %+v, want Duplicate", res)
	}
	// The tombstone is forgotten TombstoneTTL after the Report: the grant is unknown.
	if s := status(p, 11*sec-1); s.Tombstones != 1 {
		t.Fatalf("tombstones = %d", s.Tombstones)
	}
	res = report(t, p, 11*sec, g.Seq, Usage{InputTokens: 40}, Success)
	if res.Settlement != UnknownGrant {
		t.Fatalf("Report after the tombstone went = %+v, want UnknownGrant", res)
	}
}

func TestReportUnknownGrantChargesUsage(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 0, 1), tokensPerMinute(100, 1)}})
	res := report(t, p, 0, 42, Usage{InputTokens: 30, OutputTokens: 10}, Success)
	if res.Settlement != UnknownGrant || res.Charged != (Cost{InputTokens: 30, OutputTokens: 10}) {
		t.Fatalf("Report = %+v", res)
	}
	wantLevels(t, p, 0, 10, 60)
}

func TestReportInvalidUsage(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 0, 1), tokensPerMinute(100, 1), tokensPerMinute(50, 1),
		{Resource: OutputTokens, Amount: 40, Period: time.Minute, Initial: 1}}})
	g := mustGrant(t, p, 0, wait("", toks(10, 10)))
	before := status(p, 0)
	for _, u := range []Usage{{InputTokens: 60, OutputTokens: 41}, {OutputTokens: 41}, {InputTokens: -1}, {OutputTokens: MaxUnits + 1}} {
		for _, seq := range []uint64{g.Seq, 99} {
			_, err := p.Report(0, seq, u, RateLimited, time.Minute)
			wantErr(t, err, ErrInvalidUsage)
		}
	}
	if after := status(p, 0); !reflect.DeepEqual(before, after) {
		t.Fatalf("an invalid Report changed the pool:\nbefore %v\nafter  %v", before, after)
	}
	if res := report(t, p, 0, g.Seq, Usage{InputTokens: 60, OutputTokens: 40}, Success); res.Settlement != Settled {
		t.Fatalf("Report at the largest bucket = %+v", res)
	}
}

func TestRateLimitedPausesThePool(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 10, 1)}})
	g := mustGrant(t, p, 0, wait("", reqs(1)))
	if _, err := p.Report(sec, g.Seq, Usage{}, RateLimited, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if s := status(p, sec); s.PausedFor != 5*time.Second {
		t.Fatalf("paused for %v", s.PausedFor)
	}
	var ws []*Waiter
	for _, tenant := range []string{"a", "a", "b", "a"} {
		ws = append(ws, mustQueue(t, p, sec, wait(tenant, reqs(1))))
	}
	if wake := p.NextWake(sec); wake != 6*sec {
		t.Fatalf("NextWake = %d, want %d", wake, 6*sec)
	}
	p.Advance(6*sec - 1)
	for _, w := range ws {
		wantState(t, w, waiting)
	}
	p.Advance(6 * sec)
	for _, w := range ws {
		wantState(t, w, waiterGranted)
	}
	if ws[0].grant.Seq > ws[1].grant.Seq || ws[1].grant.Seq > ws[3].grant.Seq {
		t.Fatal("tenant a out of order")
	}
	if s := status(p, 6*sec); s.PausedFor != 0 || s.Waiters != 0 {
		t.Fatalf("status = %v", s)
	}
}

func TestIdempotentAcquireWhileWaiting(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 2, 0)}})
	r := Request{Tenant: "a", Cost: reqs(1), MaxWait: -1, RequestID: "x"}
	w := mustQueue(t, p, 0, r)
	other := mustQueue(t, p, 0, wait("a", reqs(1)))
	d := acquire(t, p, 50*ms, r)
	if d.Waiter != w || d.Seq != w.seq || w.attached != 2 {
		t.Fatalf("retry = %+v, want the same waiter (seq %d) attached twice", d, w.seq)
	}
	if s := status(p, 50*ms); s.Waiters != 2 || s.NextSequence != 3 {
		t.Fatalf("status = %v", s)
	}
	for _, bad := range []Request{
		{Tenant: "a", Cost: reqs(2), MaxWait: -1, RequestID: "x"},
		{Tenant: "b", Cost: reqs(1), MaxWait: -1, RequestID: "x"},
	} {
		_, err := p.Acquire(50*ms, bad)
		wantErr(t, err, ErrRequestIDReused)
	}
	// One caller leaves: the waiter keeps its place for the other.
	p.Leave(60*ms, w)
	wantState(t, w, waiting)
	p.Advance(100 * ms)
	wantState(t, w, waiterGranted)
	wantState(t, other, waiting)
}

func TestIdempotentAcquireAfterGrant(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 0, 1), tokensPerMinute(100, 1)}})
	r := Request{Cost: toks(10, 0), MaxWait: -1, RequestID: "x"}
	g := mustGrant(t, p, 0, r)
	before := status(p, 0)
	d := acquire(t, p, 0, r)
	if !d.Granted || d.Grant.Seq != g.Seq || d.Seq != g.Seq || d.Grant.Cost != g.Cost {
		t.Fatalf("retry = %+v, want grant %+v", d, g)
	}
	if after := status(p, 0); !reflect.DeepEqual(before, after) {
		t.Fatalf("a retry charged again:\nbefore %v\nafter  %v", before, after)
	}
	_, err := p.Acquire(0, Request{Cost: toks(11, 0), MaxWait: -1, RequestID: "x"})
	wantErr(t, err, ErrRequestIDReused)
	// A waiter granted later is found by its id too.
	r2 := Request{Cost: toks(95, 0), MaxWait: -1, RequestID: "y"}
	w := mustQueue(t, p, 0, r2)
	p.Advance(p.NextWake(0))
	wantState(t, w, waiterGranted)
	if d := acquire(t, p, p.NextWake(0)+sec, r2); !d.Granted || d.Grant.Seq != w.seq {
		t.Fatalf("retry after a queued grant = %+v, want seq %d", d, w.seq)
	}
}

func TestShadowMode(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 2, 1)}, Shadow: true})
	var waits []time.Duration
	for range 4 {
		d := acquire(t, p, 0, tryOnly(reqs(1)))
		if !d.Granted || !d.Grant.Shadow {
			t.Fatalf("shadow Acquire = %+v, want a shadow grant", d)
		}
		waits = append(waits, d.Grant.ShadowWait)
	}
	want := []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Fatalf("shadow waits %v, want %v", waits, want)
	}
	s := status(p, 0)
	if !s.Shadow || s.ShadowWaitTotal != 300*time.Millisecond || s.ShadowDelayed != 2 || s.Waiters != 0 {
		t.Fatalf("status = %v", s)
	}
}

func TestInitialLevels(t *testing.T) {
	for _, tc := range []struct {
		initial float64
		want    int64
		retry   time.Duration // of a try-only call for the whole capacity
	}{
		{0, 0, time.Minute},
		{1, 60, 0},
		{0.5, 30, 30 * time.Second},
		{0.25, 15, 45 * time.Second},
	} {
		p := newTestPool(t, Config{Limits: []Limit{{Resource: Requests, Amount: 60, Period: time.Minute, Initial: tc.initial}}})
		wantLevels(t, p, 0, tc.want)
		d := acquire(t, p, 0, tryOnly(reqs(60)))
		if d.RetryAfter != tc.retry || d.Granted != (tc.retry == 0) {
			t.Errorf("initial %v: %+v, want RetryAfter %v", tc.initial, d, tc.retry)
		}
	}
}

func TestReconfigure(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{tokensPerMinute(100, 1)}})
	g := mustGrant(t, p, 0, wait("", toks(90, 0)))
	w := mustQueue(t, p, 0, wait("a", toks(30, 0)))
	tooBig := mustQueue(t, p, 0, wait("b", toks(60, 0)))
	err := p.Reconfigure(6*sec, Config{Limits: []Limit{tokensPerMinute(50, 1), perSecond(10, 0, 0.5)}})
	if err != nil {
		t.Fatal(err)
	}
	// 20 of 100 at 6s: the same fraction of 50 is 10, less 1ns of refill (the scaled
	// deficit rounds up), shown rounded down.
	wantLevels(t, p, 6*sec, 9, 5)
	wantState(t, tooBig, waiterFailed)
	wantErr(t, tooBig.err, ErrCostTooLarge)
	wantState(t, w, waiting)
	s := status(p, 6*sec)
	if s.InFlight != 1 || s.Waiters != 1 || s.Unsettled.InputTokens != 90 {
		t.Fatalf("status = %v", s)
	}
	// 30 tokens at 50/min from 10 (less 1ns): 20 x 1.2s = 24s.
	wake := p.NextWake(6 * sec)
	if wake != 30*sec+1 {
		t.Fatalf("NextWake = %d", wake)
	}
	p.Advance(wake)
	wantState(t, w, waiterGranted)
	if res := report(t, p, wake, g.Seq, Usage{InputTokens: 10}, Success); res.Settlement != Settled {
		t.Fatalf("Report of a lease from before the change = %+v", res)
	}
	// A bad config changes nothing.
	if err := p.Reconfigure(wake, Config{Limits: []Limit{{Resource: Tokens, Amount: -1, Period: time.Minute}}}); err == nil {
		t.Fatal("Reconfigure accepted a negative amount")
	}
	if n := len(p.Config().Limits); n != 2 {
		t.Fatalf("limits after a bad config: %d", n)
	}
}

func TestSnapshotRestore(t *testing.T) {
	cfg := Config{
		Limits:       []Limit{perSecond(10, 0, 1), tokensPerMinute(1000, 1)},
		LeaseTTL:     10 * time.Second,
		TombstoneTTL: time.Minute,
	}
	p := newTestPool(t, cfg)
	expired := mustGrant(t, p, 0, Request{Cost: toks(100, 50), RequestID: "e"})
	reported := mustGrant(t, p, sec, Request{Cost: toks(200, 0), RequestID: "r"})
	open := mustGrant(t, p, 5*sec, Request{Cost: toks(300, 0), RequestID: "o"})
	report(t, p, 6*sec, reported.Seq, Usage{InputTokens: 250}, Success)
	if _, err := p.Report(12*sec, 999, Usage{InputTokens: 400}, RateLimited, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	now := 12 * sec
	wall := time.Unix(1_700_000_000, 0)
	st := p.Snapshot(now, "p", wall)
	if st.GetEpoch() != 7 || len(st.GetLeases()) != 3 || st.GetFormatVersion() != StateFormat {
		t.Fatalf("snapshot = %v", st)
	}
	for _, elapsed := range []time.Duration{0, 2 * time.Second, 20 * time.Second} {
		t.Run(elapsed.String(), func(t *testing.T) {
			q, err := NewPool(cfg, 500*sec, 99)
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Restore(500*sec, st, elapsed); err != nil {
				t.Fatal(err)
			}
			// The original pool, elapsed later.
			want := status(p, now+int64(elapsed))
			got := status(q, 500*sec)
			if !reflect.DeepEqual(want, got) {
				t.Fatalf("restored status differs:\nwant %v\ngot  %v", want, got)
			}
			wantSt := p.Snapshot(now+int64(elapsed), "p", wall)
			if gotSt := q.Snapshot(500*sec, "p", wall); !proto.Equal(wantSt, gotSt) {
				t.Fatalf("restored snapshot differs:\nwant %v\ngot  %v", wantSt, gotSt)
			}
		})
	}
	// The restored pool settles and deduplicates the original's grants.
	q, _ := NewPool(cfg, 0, 99)
	if err := q.Restore(0, st, 0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		seq  uint64
		want Settlement
	}{{open.Seq, Settled}, {expired.Seq, SettledLate}, {reported.Seq, Duplicate}} {
		if res := report(t, q, 0, tc.seq, Usage{InputTokens: 1}, Success); res.Settlement != tc.want {
			t.Errorf("seq %d: %v, want %v", tc.seq, res.Settlement, tc.want)
		}
	}
	if d := acquire(t, q, 0, Request{Cost: toks(300, 0), RequestID: "o"}); !d.Granted || d.Seq != open.Seq {
		t.Fatalf("retry of a restored grant = %+v", d)
	}
	if d := acquire(t, q, 3*sec, tryOnly(reqs(1))); d.Seq != 4 || d.Grant.Epoch != 7 || !d.Granted {
		t.Fatalf("next grant = %+v, want seq 4 of epoch 7", d)
	}
}

func TestRestoreRejectsNewerFormat(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 0, 1)}})
	st := p.Snapshot(0, "p", time.Time{})
	st.FormatVersion = StateFormat + 1
	if err := p.Restore(0, st, 0); err == nil {
		t.Fatal("Restore accepted a newer format")
	}
	st.FormatVersion = StateFormat
	st.Buckets[0].Resource = "bogus"
	if err := p.Restore(0, st, 0); err == nil {
		t.Fatal("Restore accepted an unknown resource")
	}
}

func TestIdle(t *testing.T) {
	cfg := Config{Limits: []Limit{perSecond(10, 0, 1)}, LeaseTTL: time.Second, TombstoneTTL: 10 * time.Second}
	p := newTestPool(t, cfg)
	if !p.Idle(0) {
		t.Fatal("a full new pool is not idle")
	}
	empty := newTestPool(t, Config{Limits: []Limit{perSecond(10, 0, 0)}})
	if empty.Idle(sec-1) || !empty.Idle(sec) {
		t.Fatal("an empty pool is idle before it fills, or not once full")
	}
	mustGrant(t, p, 0, tryOnly(reqs(1)))
	for _, tc := range []struct {
		at   int64
		idle bool
	}{
		{100 * ms, false}, // lease open
		{sec, false},      // tombstone
		{11*sec - 1, false},
		{11 * sec, true},
	} {
		if got := p.Idle(tc.at); got != tc.idle {
			t.Errorf("Idle(%v) = %v, want %v", time.Duration(tc.at), got, tc.idle)
		}
	}
	p.Pause(11*sec, 12*sec)
	if p.Idle(12*sec-1) || !p.Idle(12*sec) {
		t.Fatal("a paused pool is idle, or stays busy after the pause")
	}
}

func TestDrain(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 1, 0)}})
	ws := []*Waiter{mustQueue(t, p, 0, wait("a", reqs(1))), mustQueue(t, p, 0, wait("b", reqs(1))), mustQueue(t, p, 0, wait("a", reqs(1)))}
	errGone := errors.New("gone")
	p.Drain(errGone)
	for _, w := range ws {
		wantState(t, w, waiterFailed)
		wantErr(t, w.err, errGone)
	}
	if p.NextWake(0) != 0 || status(p, 0).Waiters != 0 {
		t.Fatal("waiters left after Drain")
	}
}

func TestGrantIDRoundTrip(t *testing.T) {
	id := GrantID{Epoch: 0x9f3a0c1e, Seq: 42}
	got, err := ParseGrantID(id.String())
	if err != nil || got != id || id.String() != "9f3a0c1e-42" {
		t.Fatalf("ParseGrantID(%q) = %v, %v", id.String(), got, err)
	}
	for _, bad := range []string{"", "9f-0", "zz-1", "9f", "9f-x", "1ffffffff-1"} {
		if _, err := ParseGrantID(bad); err == nil {
			t.Errorf("ParseGrantID(%q) accepted", bad)
		}
	}
}

// A caller that leaves after its waiter was granted, before it received the
// grant, is refunded everything, and its request id is free again.
func TestLeaveAfterUndeliveredGrantRefunds(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 2, 0), tokensPerMinute(600, 1)}})
	r := Request{Cost: toks(100, 0), MaxWait: -1, RequestID: "x"}
	w := mustQueue(t, p, 0, r)
	p.Advance(100 * ms)
	wantState(t, w, waiterGranted)
	wantLevels(t, p, 100*ms, 0, 500)
	p.Leave(100*ms, w)
	wantLevels(t, p, 100*ms, 1, 600)
	if s := status(p, 100*ms); s.InFlight != 0 || s.Tombstones != 1 {
		t.Fatalf("status = %v", s)
	}
	if d := acquire(t, p, 100*ms, r); !d.Granted || d.Seq != 2 {
		t.Fatalf("a new call with the freed id = %+v, want a new grant", d)
	}
	// A grant its caller received stays charged when the caller leaves.
	w = mustQueue(t, p, 100*ms, wait("", toks(100, 0)))
	p.Advance(200 * ms)
	wantState(t, w, waiterGranted)
	w.delivered = true
	p.Leave(200*ms, w)
	if s := status(p, 200*ms); s.InFlight != 2 {
		t.Fatalf("a delivered grant was refunded: %v", s)
	}
}

// A retry that finds its waiter already granted receives the grant; the first
// caller leaving afterwards must not refund the grant the retry holds.
func TestRetryHoldsAGrantItsFirstCallerLeaves(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 2, 0)}})
	r := Request{Cost: reqs(1), MaxWait: -1, RequestID: "x"}
	w := mustQueue(t, p, 0, r)
	p.Advance(100 * ms)
	wantState(t, w, waiterGranted)
	d := acquire(t, p, 100*ms, r)
	if !d.Granted || d.Grant.Seq != w.seq {
		t.Fatalf("retry = %+v, want grant %d", d, w.seq)
	}
	p.Leave(100*ms, w) // the first caller's connection is gone
	if s := status(p, 100*ms); s.InFlight != 1 {
		t.Fatalf("the grant the retry holds was refunded: %v", s)
	}
	if res := report(t, p, 100*ms, d.Grant.Seq, Usage{}, Success); res.Settlement != Settled {
		t.Fatalf("Report of the retry's grant = %+v, want Settled", res)
	}
}

// A retry-after too long for the engine's clock pauses the pool as long as it
// can, rather than wrapping around into no pause at all.
func TestRateLimitedPauseSaturates(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 10, 1)}})
	g := mustGrant(t, p, sec, wait("", reqs(1)))
	if _, err := p.Report(sec, g.Seq, Usage{}, RateLimited, time.Duration(math.MaxInt64)); err != nil {
		t.Fatal(err)
	}
	if s := status(p, sec); s.PausedFor < 24*time.Hour {
		t.Fatalf("paused for %v after a retry-after of %v", s.PausedFor, time.Duration(math.MaxInt64))
	}
}

// NOT_SENT means the call never reached the provider: even for a grant the pool
// does not remember, nothing is charged.
func TestReportUnknownGrantNotSentChargesNothing(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 0, 1), tokensPerMinute(100, 1)}})
	res := report(t, p, 0, 42, Usage{InputTokens: 30, OutputTokens: 10}, NotSent)
	if res.Settlement != UnknownGrant || res.Charged != (Cost{}) {
		t.Fatalf("Report = %+v, want nothing charged", res)
	}
	wantLevels(t, p, 0, 10, 100)
}

// A state Restore refuses changes nothing, even when its first buckets were fine.
func TestRestoreRefusedChangesNothing(t *testing.T) {
	cfg := Config{Limits: []Limit{perSecond(10, 0, 1), tokensPerMinute(1000, 1)}}
	src := newTestPool(t, cfg)
	mustGrant(t, src, 0, tryOnly(toks(500, 0)))
	st := src.Snapshot(0, "p", time.Time{})
	st.Buckets = append(st.Buckets, &statev1.BucketState{Resource: "bogus"})
	p := newTestPool(t, cfg)
	before := status(p, 0)
	if err := p.Restore(0, st, 0); err == nil {
		t.Fatal("Restore accepted an unknown resource")
	}
	if after := status(p, 0); !reflect.DeepEqual(before, after) {
		t.Fatalf("a refused Restore changed the pool:\nbefore %v\nafter  %v", before, after)
	}
}

// A try-only retry of a waiting request id does not wait: it is refused with the
// wait until the queue's next grant, and the waiter keeps its callers.
func TestTryOnlyRetryOfAWaiterDoesNotWait(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{perSecond(10, 2, 0)}})
	w := mustQueue(t, p, 0, Request{Cost: reqs(1), MaxWait: -1, RequestID: "x"})
	d := acquire(t, p, 40*ms, Request{Cost: reqs(1), RequestID: "x"})
	if d.Granted || d.Waiter != nil || d.Seq != w.seq || d.RetryAfter != 60*time.Millisecond || w.attached != 1 {
		t.Fatalf("try-only retry = %+v (attached %d), want a refusal with retry after 60ms", d, w.attached)
	}
}

// A state whose next sequence lags its leases (a writer's bug, or a replica from a
// newer writer) must not make the pool reuse a remembered grant's sequence.
func TestRestoreNeverReusesALeaseSequence(t *testing.T) {
	cfg := Config{Limits: []Limit{perSecond(10, 10, 1)}}
	src := newTestPool(t, cfg)
	for range 3 {
		mustGrant(t, src, 0, tryOnly(reqs(1)))
	}
	st := src.Snapshot(0, "p", time.Time{})
	st.NextSequence = 1
	p := newTestPool(t, cfg)
	if err := p.Restore(0, st, 0); err != nil {
		t.Fatal(err)
	}
	g := mustGrant(t, p, 0, tryOnly(reqs(1)))
	if g.Seq <= 3 {
		t.Fatalf("new grant has sequence %d, which a restored lease holds", g.Seq)
	}
	for seq := uint64(1); seq <= 4; seq++ {
		if res := report(t, p, 0, seq, Usage{}, Success); res.Settlement != Settled {
			t.Fatalf("Report of %d = %+v, want Settled", seq, res)
		}
	}
}

// The waiter the queue has chosen is granted whole before anyone else, whatever
// its tenant: another tenant's predicted wait counts all of it.
func TestPredictedWaitCountsTheChosenWaiter(t *testing.T) {
	p := newTestPool(t, Config{Limits: []Limit{tokensPerMinute(1000, 0)}})
	mustQueue(t, p, 0, wait("a", toks(900, 0)))
	d := acquire(t, p, 0, Request{Tenant: "b", Cost: toks(10, 0)})
	// 910 tokens at 1000 a minute.
	if want := 54600 * time.Millisecond; d.RetryAfter != want {
		t.Fatalf("try-only behind a chosen 900: RetryAfter %v, want %v", d.RetryAfter, want)
	}
}

func TestUnreportedLeasesAreCounted(t *testing.T) {
	p, err := NewPool(Config{Limits: []Limit{{Resource: Requests, Amount: 10, Period: time.Second, Initial: 1}}, LeaseTTL: time.Second}, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if d, err := p.Acquire(0, Request{MaxWait: -1}); err != nil || !d.Granted {
			t.Fatalf("acquire: %+v %v", d, err)
		}
	}
	if _, err := p.Report(0, 1, Usage{}, Success, 0); err != nil {
		t.Fatal(err)
	}
	if got := p.Status(int64(time.Second)).UnreportedLeases; got != 1 {
		t.Errorf("unreported leases %d, want 1 (the one that ran out)", got)
	}
}
