package limiter

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quotad/quotad/internal/clock"
)

// A clustered Limiter serves a pool only while it owns it, and grants only before
// the lease the cluster gives it.

func newClustered(t *testing.T, cfg Config) (*Limiter, *clock.Fake) {
	t.Helper()
	fake := clock.NewFake(epoch0)
	l := NewClustered(fake)
	if err := l.Apply(map[string]Config{"p": cfg}); err != nil {
		t.Fatal(err)
	}
	return l, fake
}

func TestClusteredPoolsStartUnowned(t *testing.T) {
	l, _ := newClustered(t, Config{Limits: []Limit{perSecond(10, 10, 1)}})
	ctx := context.Background()
	if _, err := l.Acquire(ctx, "p", tryOnly(reqs(1))); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("acquire on an unowned pool: %v, want ErrNotOwner", err)
	}
	if _, err := l.Status("p"); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("status: %v", err)
	}
	if _, err := l.Report("p", GrantID{Seq: 1}, Usage{}, Success, 0); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("report: %v", err)
	}
	if l.Owned("p") {
		t.Fatal("owned before Own")
	}
	if got := l.SnapshotChanged(map[string]uint64{}, time.Now(), nil); len(got) != 0 {
		t.Fatalf("an unowned pool is replicated: %v", got)
	}
}

func TestLeaseFencesEveryGrantPath(t *testing.T) {
	l, fake := newClustered(t, Config{Limits: []Limit{perSecond(10, 10, 0)}})
	var lease atomic.Int64
	lease.Store(l.Now() + int64(2*time.Second))
	if err := l.Own("p", OwnOptions{Lease: &lease}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fake.Advance(time.Second) // 10 requests refilled
	if d, err := l.Acquire(ctx, "p", tryOnly(reqs(5))); err != nil || !d.Granted {
		t.Fatalf("within the lease: %+v %v", d, err)
	}
	// A waiter for 10 (payable at 1.5 s) outlives the lease (2 s)? No: it is paid
	// at 1.5 s, before the fence.
	w := goAcquire(ctx, l, wait("", reqs(10)))
	eventually(t, "the waiter queues", func() bool { return waiters(t, l) == 1 })
	fake.Advance(500 * time.Millisecond)
	if r := <-w; r.err != nil || !r.d.Granted {
		t.Fatalf("waiter paid before the fence: %+v %v", r.d, r.err)
	}
	// A waiter that could be paid only after the lease ends fails with ErrFenced
	// when its turn comes, and new calls fail at once.
	w = goAcquire(ctx, l, wait("", reqs(10)))
	eventually(t, "the waiter queues", func() bool { return waiters(t, l) == 1 })
	fake.Advance(time.Second)
	if r := <-w; !errors.Is(r.err, ErrFenced) {
		t.Fatalf("waiter past the fence: %+v %v, want ErrFenced", r.d, r.err)
	}
	if _, err := l.Acquire(ctx, "p", tryOnly(reqs(1))); !errors.Is(err, ErrFenced) {
		t.Fatalf("acquire past the fence: %v", err)
	}
	// Renewing the lease lets it grant again, from the same buckets.
	lease.Store(l.Now() + int64(time.Second))
	if d, err := l.Acquire(ctx, "p", tryOnly(reqs(5))); err != nil || !d.Granted {
		t.Fatalf("after renewal: %+v %v", d, err)
	}
}

func TestDisownHandsOverTheFinalState(t *testing.T) {
	l, _ := newClustered(t, Config{Limits: []Limit{perSecond(10, 10, 1)}})
	if err := l.Own("p", OwnOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := l.Acquire(ctx, "p", tryOnly(reqs(7)))
	if err != nil || !d.Granted {
		t.Fatal(d, err)
	}
	w := goAcquire(ctx, l, wait("", reqs(8)))
	eventually(t, "the waiter queues", func() bool { return waiters(t, l) == 1 })
	st, err := l.Disown("p", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r := <-w; !errors.Is(r.err, ErrNotOwner) {
		t.Fatalf("waiter on disown: %v, want ErrNotOwner (its caller re-sends to the new owner)", r.err)
	}
	if _, err := l.Acquire(ctx, "p", tryOnly(reqs(1))); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("acquire after disown: %v", err)
	}

	// The next owner continues exactly: 3 left, the lease open.
	next, _ := newClustered(t, Config{Limits: []Limit{perSecond(10, 10, 0)}})
	if err := next.Own("p", OwnOptions{State: st}); err != nil {
		t.Fatal(err)
	}
	s, err := next.Status("p")
	if err != nil {
		t.Fatal(err)
	}
	if s.Limits[0].Level != 3 || s.InFlight != 1 {
		t.Fatalf("after handoff: level %d, in flight %d; want 3 and 1", s.Limits[0].Level, s.InFlight)
	}
	if _, err := next.Report("p", GrantID{Epoch: d.Grant.Epoch, Seq: d.Grant.Seq}, Usage{}, Success, 0); err != nil {
		t.Fatalf("report of a grant made before the handoff: %v", err)
	}
}

func TestOwnWithTakeOverChargesTheTightestLevel(t *testing.T) {
	l, _ := newClustered(t, Config{Limits: []Limit{perSecond(10, 10, 1)}})
	if err := l.Own("p", OwnOptions{TakeOver: true}); err != nil {
		t.Fatal(err)
	}
	s, err := l.Status("p")
	if err != nil {
		t.Fatal(err)
	}
	if s.Limits[0].Level != 0 {
		t.Fatalf("a takeover without a replica starts at level %d, want 0 (never full)", s.Limits[0].Level)
	}
}
