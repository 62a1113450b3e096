package limiter

import (
	"errors"
	"testing"
	"time"
)

// Engine nanoseconds.
const (
	ns  int64 = 1
	ms        = int64(time.Millisecond)
	sec       = int64(time.Second)
)

// perSecond is a requests limit of n per second holding burst (0: n), starting at
// the fraction initial of it.
func perSecond(n, burst int64, initial float64) Limit {
	return Limit{Resource: Requests, Amount: n, Period: time.Second, Capacity: burst, Initial: initial}
}

// tokensPerMinute is a tokens limit of n per minute, starting at initial.
func tokensPerMinute(n int64, initial float64) Limit {
	return Limit{Resource: Tokens, Amount: n, Period: time.Minute, Initial: initial}
}

func newTestPool(t testing.TB, cfg Config) *Pool {
	t.Helper()
	p, err := NewPool(cfg, 0, 7)
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	return p
}

func reqs(n int64) Cost { return Cost{Requests: n} }

func toks(in, out int64) Cost { return Cost{Requests: 1, InputTokens: in, OutputTokens: out} }

// wait is a request that waits as long as it takes.
func wait(tenant string, c Cost) Request { return Request{Tenant: tenant, Cost: c, MaxWait: -1} }

// tryOnly is a request that never waits.
func tryOnly(c Cost) Request { return Request{Cost: c} }

func acquire(t testing.TB, p *Pool, now int64, req Request) Decision {
	t.Helper()
	d, err := p.Acquire(now, req)
	if err != nil {
		t.Fatalf("Acquire(%d, %+v): %v", now, req, err)
	}
	return d
}

// mustGrant acquires and requires an immediate grant.
func mustGrant(t testing.TB, p *Pool, now int64, req Request) Grant {
	t.Helper()
	d := acquire(t, p, now, req)
	if !d.Granted {
		t.Fatalf("Acquire(%d, %+v) = %+v, want an immediate grant", now, req, d)
	}
	return d.Grant
}

// mustQueue acquires and requires the call to wait.
func mustQueue(t testing.TB, p *Pool, now int64, req Request) *Waiter {
	t.Helper()
	d := acquire(t, p, now, req)
	if d.Granted || d.Waiter == nil {
		t.Fatalf("Acquire(%d, %+v) = %+v, want a waiter", now, req, d)
	}
	return d.Waiter
}

func report(t testing.TB, p *Pool, now int64, seq uint64, u Usage, o Outcome) ReportResult {
	t.Helper()
	res, err := p.Report(now, seq, u, o, 0)
	if err != nil {
		t.Fatalf("Report(%d, seq %d, %+v, %v): %v", now, seq, u, o, err)
	}
	return res
}

// levels returns the level of every limit of p at now, in config order.
func levels(p *Pool, now int64) []int64 {
	var out []int64
	for _, l := range p.Status(now).Limits {
		out = append(out, l.Level)
	}
	return out
}

func wantLevels(t testing.TB, p *Pool, now int64, want ...int64) {
	t.Helper()
	got := levels(p, now)
	if len(got) != len(want) {
		t.Fatalf("levels at %v = %v, want %v", time.Duration(now), got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("levels at %v = %v, want %v", time.Duration(now), got, want)
		}
	}
}

func status(p *Pool, now int64) PoolStatus { return p.Status(now) }

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

func wantState(t testing.TB, w *Waiter, state waiterState) {
	t.Helper()
	if w.state != state {
		t.Fatalf("waiter %d: state %d, want %d (err %v)", w.seq, w.state, state, w.err)
	}
}
