package limiter

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quotad/quotad/internal/clock"
	statev1 "github.com/quotad/quotad/proto/quotad/state/v1"
)

// Limiter holds one node's pools and makes callers wait for their grants. It is
// safe for concurrent use: each pool is owned by its entry's mutex, and every
// pool arms at most one timer, for the instant its next waiter can be paid.
type Limiter struct {
	clock clock.Clock
	base  time.Time // engine time is nanoseconds since base, by the clock's monotonic reading

	// clustered: pools start unowned; the cluster gives each to one node (Own) and
	// fences its grants with a lease.
	clustered bool

	mu     sync.RWMutex // guards pools and closed
	pools  map[string]*entry
	closed bool
}

// entry owns one pool.
type entry struct {
	lim     *Limiter
	mu      sync.Mutex // guards everything below, and the pool
	pool    *Pool
	timer   clock.Timer
	wakeAt  int64
	gone    error        // set when the pool was removed or the Limiter closed
	version uint64       // counts operations; a snapshot carries it
	def     atomic.Value // the accepted Config's Definition, read without mu
	// In a cluster: whether this node owns the pool, and until when (engine
	// time) it may grant, as the cluster last said. The lease is written by the
	// cluster and read under mu at every operation. nil: no fence.
	owned bool
	lease *atomic.Int64
}

// New returns a Limiter without pools.
func New(c clock.Clock) *Limiter {
	return &Limiter{clock: c, base: c.Now(), pools: make(map[string]*entry)}
}

// NewClustered returns a Limiter for a node of a cluster: its pools start unowned
// (calls fail with ErrNotOwner) until Own gives them to it.
func NewClustered(c clock.Clock) *Limiter {
	l := New(c)
	l.clustered = true
	return l
}

func (l *Limiter) now() int64 { return int64(l.clock.Now().Sub(l.base)) }

// Now returns the engine's time: nanoseconds of the clock since the Limiter began.
// Leases given to Own are instants of this time.
func (l *Limiter) Now() int64 { return l.now() }

// Apply makes the set of pools equal cfgs: new pools start at their initial levels,
// existing ones are reconfigured in place, and pools not in cfgs are removed, their
// waiters failing with ErrPoolRemoved. A config that fails validation leaves its pool
// as it was; the errors name the pools.
func (l *Limiter) Apply(cfgs map[string]Config) error {
	refused := map[string]error{}
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, cfg := range cfgs {
		if e := l.pools[name]; e != nil {
			if err := e.reconfigure(cfg); err != nil {
				refused[name] = err
			}
			continue
		}
		p, err := NewPool(cfg, l.now(), rand.Uint32())
		if err != nil {
			refused[name] = err
			continue
		}
		e := &entry{lim: l, pool: p, owned: !l.clustered}
		e.def.Store(definition{cfg.Definition})
		l.pools[name] = e
	}
	for name, e := range l.pools {
		if _, ok := cfgs[name]; !ok {
			delete(l.pools, name)
			e.drain(fmt.Errorf("%w: %q", ErrPoolRemoved, name))
		}
	}
	if len(refused) > 0 {
		return &ApplyError{Refused: refused}
	}
	return nil
}

// ApplyError lists the pools Apply refused; each kept its previous definition (a
// new one was not created).
type ApplyError struct {
	Refused map[string]error
}

func (e *ApplyError) Error() string {
	names := make([]string, 0, len(e.Refused))
	for name := range e.Refused {
		names = append(names, name)
	}
	sort.Strings(names)
	msg := ""
	for i, name := range names {
		if i > 0 {
			msg += "; "
		}
		msg += fmt.Sprintf("pool %q: %v", name, e.Refused[name])
	}
	return msg
}

func (e *entry) reconfigure(cfg Config) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.lim.now()
	err := e.pool.Reconfigure(now, cfg)
	if err == nil {
		e.def.Store(definition{cfg.Definition})
	}
	e.rearm(now)
	return err
}

// definition boxes a Config's Definition: atomic.Value needs one concrete type.
type definition struct{ v any }

// Definition returns the Definition of the pool's config in force: the one of the
// latest Apply that accepted it.
func (l *Limiter) Definition(pool string) (any, error) {
	e, err := l.entry(pool)
	if err != nil {
		return nil, err
	}
	return e.def.Load().(definition).v, nil
}

// drain fails the pool's waiters with err, and any call that reaches the entry
// afterwards (it looked the entry up before it was removed).
func (e *entry) drain(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gone = err
	e.pool.Drain(err)
	if e.timer != nil {
		e.timer.Stop()
		e.timer, e.wakeAt = nil, 0
	}
}

// Close fails every waiter with ErrClosed and refuses new Acquires.
func (l *Limiter) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for _, e := range l.pools {
		e.drain(ErrClosed)
	}
}

func (l *Limiter) entry(pool string) (*entry, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	e := l.pools[pool]
	if e == nil {
		return nil, fmt.Errorf("%w: %q", ErrPoolNotFound, pool)
	}
	return e, nil
}

// with runs fn on the pool under its lock, if this node serves it, then rearms
// the pool's timer.
func (l *Limiter) with(pool string, fn func(p *Pool, now int64) error) error {
	return l.withEntry(pool, func(e *entry, now int64) error {
		if err := e.serving(now); err != nil {
			return err
		}
		return fn(e.pool, now)
	})
}

// withEntry runs fn on the pool's entry under its lock, owned or not, then rearms
// the pool's timer.
func (l *Limiter) withEntry(pool string, fn func(e *entry, now int64) error) error {
	e, err := l.entry(pool)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gone != nil {
		return e.gone
	}
	now := l.now()
	err = fn(e, now)
	e.rearm(now)
	return err
}

// serving checks that the pool is here to be served, and applies the cluster's
// fence to it. Callers hold e.mu.
func (e *entry) serving(now int64) error {
	if e.gone != nil {
		return e.gone
	}
	if !e.owned {
		return ErrNotOwner
	}
	if e.lease != nil {
		e.pool.SetGrantUntil(e.lease.Load())
	}
	return nil
}

// rearm ends every operation on the pool: it counts the change (replication sends
// pools whose version moved) and points the pool's one timer at its next wake-up.
// Callers hold e.mu.
func (e *entry) rearm(now int64) {
	e.version++
	wake := e.pool.NextWake(now)
	if wake == e.wakeAt {
		return
	}
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	e.wakeAt = wake
	if wake != 0 {
		e.timer = e.lim.clock.AfterFunc(time.Duration(wake-now), e.wake)
	}
}

// wake is the pool's timer: grant what is now payable, then rearm.
func (e *entry) wake() {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.lim.now()
	e.wakeAt = 0 // this timer has fired
	e.timer = nil
	if e.serving(now) != nil {
		return
	}
	if e.pool.Fenced(now) {
		e.pool.Drain(ErrFenced) // their callers retry on a node that may grant
	}
	e.pool.Advance(now)
	e.rearm(now)
}

// Acquire asks pool for req.Cost and waits, within ctx and req.MaxWait, until it is
// granted. A call refused by its wait budget is a Decision with Granted false and
// RetryAfter set, not an error; ctx ending removes the waiter and charges nothing.
func (l *Limiter) Acquire(ctx context.Context, pool string, req Request) (Decision, error) {
	e, err := l.entry(pool)
	if err != nil {
		return Decision{}, err
	}
	if err := ctx.Err(); err != nil {
		return Decision{}, err // the caller left: nobody would receive a grant
	}
	e.mu.Lock()
	now := l.now()
	if err := e.serving(now); err != nil {
		e.mu.Unlock()
		return Decision{}, err
	}
	d, err := e.pool.Acquire(now, req)
	w := d.Waiter
	if w != nil && w.done == nil {
		w.done = make(chan struct{})
	}
	e.rearm(now)
	e.mu.Unlock()
	if err != nil || w == nil {
		return d, err
	}
	return e.wait(ctx, w, req)
}

// wait blocks until w is decided, ctx ends or req.MaxWait passes.
func (e *entry) wait(ctx context.Context, w *Waiter, req Request) (Decision, error) {
	var budget chan struct{}
	if req.MaxWait > 0 {
		budget = make(chan struct{})
		t := e.lim.clock.AfterFunc(req.MaxWait, func() { close(budget) })
		defer t.Stop()
	}
	var ctxErr error
	select {
	case <-w.done:
	case <-ctx.Done():
		ctxErr = ctx.Err()
	case <-budget:
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if ctxErr == nil {
		ctxErr = ctx.Err() // the caller left as w was decided: it takes no grant
	}
	now := e.lim.now()
	defer e.rearm(now)
	switch w.state {
	case waiterGranted:
		if ctxErr == nil {
			w.delivered = true
			return Decision{Granted: true, Grant: w.grant, Seq: w.seq}, nil
		}
	case waiterFailed:
		return Decision{Seq: w.seq}, w.err
	}
	e.pool.Leave(now, w)
	if ctxErr != nil {
		return Decision{Seq: w.seq}, ctxErr
	}
	retry := e.pool.predict(now, req.Tenant, e.pool.weight(req.Tenant), w.cost)
	return Decision{Seq: w.seq, RetryAfter: time.Duration(retry)}, nil
}

// Report settles a grant of pool; see Pool.Report. A grant of another incarnation
// of the pool is an unknown grant.
func (l *Limiter) Report(pool string, id GrantID, u Usage, outcome Outcome, retryAfter time.Duration) (ReportResult, error) {
	return l.ReportWithFeedback(pool, id, u, outcome, retryAfter, Feedback{})
}

// ReportWithFeedback settles a grant of pool with what the provider said; see
// Pool.ReportWithFeedback.
func (l *Limiter) ReportWithFeedback(pool string, id GrantID, u Usage, outcome Outcome, retryAfter time.Duration, fb Feedback) (ReportResult, error) {
	var res ReportResult
	err := l.with(pool, func(p *Pool, now int64) (err error) {
		res, err = p.ReportWithFeedback(now, p.localSeq(id), u, outcome, retryAfter, fb)
		return err
	})
	return res, err
}

// Renew extends an open lease of pool; see Pool.Renew.
func (l *Limiter) Renew(pool string, id GrantID) (time.Duration, error) {
	var ttl time.Duration
	err := l.with(pool, func(p *Pool, now int64) (err error) {
		ttl, err = p.Renew(now, p.localSeq(id))
		return err
	})
	return ttl, err
}

// Pools returns the names of the pools.
func (l *Limiter) Pools() []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	names := make([]string, 0, len(l.pools))
	for name := range l.pools {
		names = append(names, name)
	}
	return names
}

// Status describes pool for GetPool.
// A look changes nothing but what time changes (expired leases, forgotten
// tombstones, waiters that became payable), so it counts as a change for
// replication only when one of those happened.
func (l *Limiter) Status(pool string) (PoolStatus, error) {
	e, err := l.entry(pool)
	if err != nil {
		return PoolStatus{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := l.now()
	if err := e.serving(now); err != nil {
		return PoolStatus{}, err
	}
	p := e.pool
	before := [3]int64{int64(p.queue.n), p.inFlight, int64(p.tombs.n)}
	s := p.Status(now)
	version := e.version
	e.rearm(now)
	if before == [3]int64{int64(p.queue.n), p.inFlight, int64(p.tombs.n)} {
		e.version = version
	}
	return s, nil
}

// Snapshot returns the state of every pool, taken at the wall-clock time wall.
func (l *Limiter) Snapshot(wall time.Time) []*statev1.PoolState {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]*statev1.PoolState, 0, len(l.pools))
	for name, e := range l.pools {
		e.mu.Lock()
		out = append(out, e.pool.Snapshot(l.now(), name, wall))
		e.mu.Unlock()
	}
	return out
}

// SnapshotChanged returns the state of every owned pool whose version is not
// seen[name] and for which due (when not nil) says yes, and records the versions
// it returns in seen. Pools no longer present are dropped from seen.
func (l *Limiter) SnapshotChanged(seen map[string]uint64, wall time.Time, due func(pool string) bool) []*statev1.PoolState {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var out []*statev1.PoolState
	for name, e := range l.pools {
		if due != nil && !due(name) {
			continue
		}
		e.mu.Lock()
		if v, ok := seen[name]; e.owned && (!ok || v != e.version) {
			st := e.pool.Snapshot(l.now(), name, wall)
			st.Version = e.version
			seen[name] = e.version
			out = append(out, st)
		}
		e.mu.Unlock()
	}
	for name := range seen {
		if l.pools[name] == nil {
			delete(seen, name)
		}
	}
	return out
}

// OwnOptions say how a node comes to own a pool (see Own).
type OwnOptions struct {
	// Lease is until when (engine time) the node may grant; the caller keeps
	// storing into it as the cluster renews it. nil: no fence.
	Lease *atomic.Int64
	// State, when not nil, is the pool's state to continue from, taken Elapsed ago.
	State   *statev1.PoolState
	Elapsed time.Duration
	// TakeOver charges what a previous owner could have granted since State (or
	// since the node last held the pool, without State); see Pool.TakeOver. A
	// handoff's state is final and needs no charge.
	TakeOver bool
}

// Own makes this node the pool's owner. The state to continue from is opts.State,
// else what the node holds.
func (l *Limiter) Own(pool string, opts OwnOptions) error {
	return l.withEntry(pool, func(e *entry, now int64) error {
		if opts.State != nil {
			if err := e.pool.Restore(now, opts.State, opts.Elapsed); err != nil {
				return fmt.Errorf("own pool %q: %w", pool, err)
			}
		}
		if opts.TakeOver {
			e.pool.TakeOver(now)
		}
		e.owned, e.lease = true, opts.Lease
		if e.lease != nil {
			e.pool.SetGrantUntil(e.lease.Load())
		}
		return nil
	})
}

// Disown stops this node serving the pool: its waiters fail with ErrNotOwner (so
// their callers re-send to the new owner) and its final state is returned, taken at
// the wall-clock time wall, for a handoff.
func (l *Limiter) Disown(pool string, wall time.Time) (*statev1.PoolState, error) {
	var st *statev1.PoolState
	err := l.withEntry(pool, func(e *entry, now int64) error {
		e.owned, e.lease = false, nil
		e.pool.Drain(ErrNotOwner)
		st = e.pool.Snapshot(now, pool, wall)
		st.Version = e.version
		return nil
	})
	return st, err
}

// Owned reports whether this node serves the pool.
func (l *Limiter) Owned(pool string) bool {
	e, err := l.entry(pool)
	if err != nil {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.owned && e.gone == nil
}

// Restore loads st into its pool, as of elapsed after it was taken, owned or not
// (a restart reads its state file before the cluster gives it pools). A state for
// a pool the Limiter does not have is an ErrPoolNotFound.
func (l *Limiter) Restore(st *statev1.PoolState, elapsed time.Duration) error {
	return l.withEntry(st.GetPool(), func(e *entry, now int64) error {
		return e.pool.Restore(now, st, elapsed)
	})
}
