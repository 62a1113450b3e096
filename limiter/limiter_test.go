package limiter

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/quotad/quotad/internal/clock"
)

var epoch0 = time.Unix(1_700_000_000, 0)

type result struct {
	d   Decision
	err error
}

// newTestLimiter returns a Limiter on a fake clock with one pool "p".
func newTestLimiter(t *testing.T, cfg Config) (*Limiter, *clock.Fake) {
	t.Helper()
	fake := clock.NewFake(epoch0)
	l := New(fake)
	if err := l.Apply(map[string]Config{"p": cfg}); err != nil {
		t.Fatal(err)
	}
	return l, fake
}

// goAcquire runs a blocking Acquire in its own goroutine.
func goAcquire(ctx context.Context, l *Limiter, req Request) <-chan result {
	ch := make(chan result, 1)
	go func() {
		d, err := l.Acquire(ctx, "p", req)
		ch <- result{d, err}
	}()
	return ch
}

// eventually spins, briefly and boundedly, until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// waiters returns how many calls wait in pool p.
func waiters(t *testing.T, l *Limiter) int {
	t.Helper()
	s, err := l.Status("p")
	if err != nil {
		t.Fatal(err)
	}
	return s.Waiters
}

// attached returns how many callers wait on the waiter of request id, under the
// pool's lock.
func attached(l *Limiter, id string) int {
	e, err := l.entry("p")
	if err != nil {
		return 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if w := e.pool.waitingReq[id]; w != nil {
		return w.attached
	}
	return 0
}

func receive(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("Acquire did not return")
		return result{}
	}
}

func TestLimiterBlockingAcquireWakesOnTime(t *testing.T) {
	l, fake := newTestLimiter(t, Config{Limits: []Limit{perSecond(10, 1, 0)}})
	ch := goAcquire(context.Background(), l, wait("", reqs(1)))
	eventually(t, "the call waits", func() bool { return waiters(t, l) == 1 && fake.Pending() == 1 })
	fake.Advance(100*time.Millisecond - 1)
	if n := waiters(t, l); n != 1 {
		t.Fatalf("granted before its time: %d waiters", n)
	}
	fake.Advance(1)
	r := receive(t, ch)
	if r.err != nil || !r.d.Granted || r.d.Grant.Waited != 100*time.Millisecond || r.d.Seq != 1 {
		t.Fatalf("Acquire = %+v, %v", r.d, r.err)
	}
	if fake.Pending() != 0 {
		t.Fatalf("%d timers left armed", fake.Pending())
	}
	res, err := l.Report("p", r.d.Grant.ID(), Usage{}, Success, 0)
	if err != nil || res.Settlement != Settled {
		t.Fatalf("Report = %+v, %v", res, err)
	}
	// Another incarnation's grant is unknown here.
	res, err = l.Report("p", GrantID{Epoch: r.d.Grant.Epoch + 1, Seq: 1}, Usage{}, Success, 0)
	if err != nil || res.Settlement != UnknownGrant {
		t.Fatalf("Report of another epoch = %+v, %v", res, err)
	}
}

func TestLimiterCancelRemovesWaiter(t *testing.T) {
	l, fake := newTestLimiter(t, Config{Limits: []Limit{perSecond(10, 1, 0)}})
	before, _ := l.Status("p")
	ctx, cancel := context.WithCancel(context.Background())
	ch := goAcquire(ctx, l, wait("", reqs(1)))
	eventually(t, "the call waits", func() bool { return waiters(t, l) == 1 })
	cancel()
	r := receive(t, ch)
	if !errors.Is(r.err, context.Canceled) || r.d.Granted {
		t.Fatalf("Acquire = %+v, %v; want context.Canceled", r.d, r.err)
	}
	after, _ := l.Status("p")
	if after.Waiters != 0 || after.Limits[0].Level != before.Limits[0].Level || after.InFlight != 0 {
		t.Fatalf("status after cancel = %v", after)
	}
	if fake.Pending() != 0 {
		t.Fatalf("%d timers left armed", fake.Pending())
	}
	// The next caller is served on time, as if the first had never come.
	ch = goAcquire(context.Background(), l, wait("", reqs(1)))
	eventually(t, "the call waits", func() bool { return waiters(t, l) == 1 })
	fake.Advance(100 * time.Millisecond)
	if r := receive(t, ch); !r.d.Granted || r.d.Seq != 2 {
		t.Fatalf("Acquire = %+v, %v", r.d, r.err)
	}
}

func TestLimiterMaxWaitExpires(t *testing.T) {
	l, fake := newTestLimiter(t, Config{Limits: []Limit{perSecond(1, 1, 0)}})
	ch := goAcquire(context.Background(), l, Request{Cost: reqs(1), MaxWait: 1500 * time.Millisecond})
	eventually(t, "the call waits with its budget armed", func() bool { return fake.Pending() == 2 })
	// A provider 429 pauses the pool for 10s: the call cannot make its budget.
	if _, err := l.Report("p", GrantID{}, Usage{}, RateLimited, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	fake.Advance(1500 * time.Millisecond)
	r := receive(t, ch)
	if r.err != nil || r.d.Granted || r.d.RetryAfter != 8500*time.Millisecond {
		t.Fatalf("Acquire = %+v, %v; want refusal with RetryAfter 8.5s", r.d, r.err)
	}
	if n := waiters(t, l); n != 0 {
		t.Fatalf("%d waiters left", n)
	}
}

func TestLimiterTryOnly(t *testing.T) {
	l, _ := newTestLimiter(t, Config{Limits: []Limit{perSecond(10, 2, 0)}})
	d, err := l.Acquire(context.Background(), "p", tryOnly(reqs(1)))
	if err != nil || d.Granted || d.RetryAfter != 100*time.Millisecond {
		t.Fatalf("Acquire = %+v, %v", d, err)
	}
	if _, err := l.Acquire(context.Background(), "nope", tryOnly(reqs(1))); !errors.Is(err, ErrPoolNotFound) {
		t.Fatalf("unknown pool: %v", err)
	}
}

func TestLimiterApplyRemovesPool(t *testing.T) {
	l, fake := newTestLimiter(t, Config{Limits: []Limit{perSecond(10, 1, 0)}})
	ch := goAcquire(context.Background(), l, wait("", reqs(1)))
	eventually(t, "the call waits", func() bool { return waiters(t, l) == 1 })
	if err := l.Apply(map[string]Config{"q": {Limits: []Limit{perSecond(1, 0, 1)}}}); err != nil {
		t.Fatal(err)
	}
	r := receive(t, ch)
	if !errors.Is(r.err, ErrPoolRemoved) {
		t.Fatalf("Acquire = %+v, %v; want ErrPoolRemoved", r.d, r.err)
	}
	if fake.Pending() != 0 {
		t.Fatalf("%d timers left armed", fake.Pending())
	}
	if got := l.Pools(); len(got) != 1 || got[0] != "q" {
		t.Fatalf("pools = %v", got)
	}
	// A bad config names its pool and keeps the pool as it was.
	err := l.Apply(map[string]Config{"q": {Limits: []Limit{{Resource: Requests, Period: time.Second}}}})
	if err == nil {
		t.Fatal("Apply accepted a zero amount")
	}
	if s, _ := l.Status("q"); s.Limits[0].Amount != 1 {
		t.Fatalf("status after a bad config = %v", s)
	}
}

func TestLimiterCloseFailsWaiters(t *testing.T) {
	l, _ := newTestLimiter(t, Config{Limits: []Limit{perSecond(10, 1, 0)}})
	ch := goAcquire(context.Background(), l, wait("", reqs(1)))
	eventually(t, "the call waits", func() bool { return waiters(t, l) == 1 })
	l.Close()
	if r := receive(t, ch); !errors.Is(r.err, ErrClosed) {
		t.Fatalf("Acquire = %+v, %v; want ErrClosed", r.d, r.err)
	}
	if _, err := l.Acquire(context.Background(), "p", tryOnly(reqs(1))); !errors.Is(err, ErrClosed) {
		t.Fatalf("Acquire after Close: %v", err)
	}
}

func TestLimiterRetriesShareAWaiter(t *testing.T) {
	l, fake := newTestLimiter(t, Config{Limits: []Limit{perSecond(10, 1, 0)}})
	req := Request{Cost: reqs(1), MaxWait: -1, RequestID: "call-1"}
	ctx1, cancel1 := context.WithCancel(context.Background())
	ch1 := goAcquire(ctx1, l, req)
	eventually(t, "the first call waits", func() bool { return attached(l, "call-1") == 1 })
	ch2 := goAcquire(context.Background(), l, req)
	eventually(t, "the retry attaches", func() bool { return attached(l, "call-1") == 2 })
	if n := waiters(t, l); n != 1 {
		t.Fatalf("%d waiters, want 1", n)
	}
	cancel1()
	if r := receive(t, ch1); !errors.Is(r.err, context.Canceled) || r.d.Seq != 1 {
		t.Fatalf("first call = %+v, %v", r.d, r.err)
	}
	if n := waiters(t, l); n != 1 {
		t.Fatalf("the retry's waiter left with the first call: %d waiters", n)
	}
	fake.Advance(100 * time.Millisecond)
	r := receive(t, ch2)
	if r.err != nil || !r.d.Granted || r.d.Grant.Seq != 1 {
		t.Fatalf("retry = %+v, %v", r.d, r.err)
	}
	// A third retry gets the same grant, charged once.
	d, err := l.Acquire(context.Background(), "p", req)
	if err != nil || !d.Granted || d.Grant.Seq != 1 {
		t.Fatalf("late retry = %+v, %v", d, err)
	}
	if s, _ := l.Status("p"); s.InFlight != 1 || s.NextSequence != 2 {
		t.Fatalf("status = %v", s)
	}
}

func TestLimiterRenewAndSnapshot(t *testing.T) {
	l, fake := newTestLimiter(t, Config{Limits: []Limit{perSecond(10, 0, 1)}, LeaseTTL: time.Second})
	d, err := l.Acquire(context.Background(), "p", tryOnly(reqs(1)))
	if err != nil || !d.Granted {
		t.Fatal(d, err)
	}
	fake.Advance(900 * time.Millisecond)
	if ttl, err := l.Renew("p", d.Grant.ID()); err != nil || ttl != time.Second {
		t.Fatalf("Renew = %v, %v", ttl, err)
	}
	fake.Advance(999 * time.Millisecond)
	states := l.Snapshot(fake.Now())
	if len(states) != 1 || len(states[0].GetLeases()) != 1 || states[0].GetLeases()[0].GetExpiresIn().AsDuration() != time.Millisecond {
		t.Fatalf("snapshot = %v", states)
	}
	fake.Advance(time.Millisecond)
	if _, err := l.Renew("p", d.Grant.ID()); !errors.Is(err, ErrGrantNotFound) {
		t.Fatalf("Renew after expiry: %v", err)
	}
	// Restoring the snapshot brings the lease back, minus the time since.
	if err := l.Restore(states[0], 0); err != nil {
		t.Fatal(err)
	}
	if s, _ := l.Status("p"); s.InFlight != 1 {
		t.Fatalf("status after Restore = %v", s)
	}
	states[0].Pool = "nope"
	if err := l.Restore(states[0], 0); !errors.Is(err, ErrPoolNotFound) {
		t.Fatalf("Restore of an unknown pool: %v", err)
	}
}

// A caller that has already left is not granted: nobody would receive the grant,
// and its slot and estimate would stay taken until the lease ran out.
func TestLimiterGrantsNoCallerThatLeft(t *testing.T) {
	l, fake := newTestLimiter(t, Config{Limits: []Limit{perSecond(10, 1, 1)}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d, err := l.Acquire(ctx, "p", wait("", reqs(1))); !errors.Is(err, context.Canceled) || d.Granted {
		t.Fatalf("Acquire after the caller left = %+v, %v; want context.Canceled", d, err)
	}
	// The caller leaves as its waiter is granted: whichever the waiting call sees
	// first, a grant it does not return is refunded.
	for i := range 50 {
		d, err := l.Acquire(context.Background(), "p", tryOnly(reqs(1))) // empty the bucket
		if err != nil || !d.Granted {
			t.Fatalf("round %d: %+v %v", i, d, err)
		}
		if _, err := l.Report("p", d.Grant.ID(), Usage{}, Success, 0); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ch := goAcquire(ctx, l, wait("", reqs(1)))
		eventually(t, "the call waits", func() bool { return waiters(t, l) == 1 })
		cancel()
		fake.Advance(100 * time.Millisecond)
		r := receive(t, ch)
		if s, _ := l.Status("p"); r.d.Granted || s.InFlight != 0 || s.Limits[0].Level != 1 {
			t.Fatalf("round %d: Acquire = %+v, %v after its caller left; status %v", i, r.d, r.err, s)
		}
	}
}
