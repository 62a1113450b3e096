package limiter

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Pool is one pool's decision state: its buckets, queue and leases. It is a plain
// data structure: it does no I/O, reads no clock (every method takes now, in
// nanoseconds of the caller's monotonic clock) and is not safe for concurrent use;
// the Limiter serializes access to it.
//
// Every method first lets time pass (expiring leases, forgetting tombstones) and
// ends by granting the waiters that can now be paid, so the queue's head is never
// payable between calls.
type Pool struct {
	cfg      Config
	epoch    uint32
	buckets  []bucket // one per cfg.Limits entry
	maxUnits [numResources]int64
	weights  map[string]float64

	queue      queue
	byRequest  map[string]*lease  // request id -> grant, while the pool remembers it
	waitingReq map[string]*Waiter // request id -> waiter
	leases     map[uint64]*lease  // sequence -> open lease or tombstone
	open       leaseList          // open leases by expiry
	tombs      leaseList          // tombstones by forget time
	inFlight   int64
	unsettled  Cost
	nextSeq    uint64
	paused     int64 // no grants before this instant
	grantUntil int64 // no grants from this instant: the cluster's fence (see SetGrantUntil)

	shadowWait    int64 // total wait shadow mode did not impose, ns
	shadowDelayed uint64

	free []*lease // forgotten leases kept for reuse, at most maxFreeLeases

	phantoms     int64 // concurrency slots held for leases a previous owner may have granted
	phantomUntil int64

	unreported     uint64 // leases that ran out without a Report
	granted        Cost   // everything ever granted, for provider feedback
	refunded       Cost   // net of every settlement's refund (less excess charged), likewise
	exhausted      string // why the pool fails fast (a spent provider quota), if it does
	exhaustedUntil int64
}

// maxFreeLeases bounds the leases a pool keeps for reuse: enough that a busy pool
// allocates none in its steady state, few enough to be no memory concern.
const maxFreeLeases = 64

// Request is one Acquire.
type Request struct {
	Tenant    string
	Cost      Cost
	MaxWait   time.Duration // negative: no bound but the caller's deadline
	RequestID string
}

// Grant is a granted Acquire.
type Grant struct {
	Seq        uint64 // the order in which the pool took the call; the grant's id in the pool
	Epoch      uint32 // the pool's incarnation, part of the grant id
	Cost       Cost
	Waited     time.Duration
	LeaseTTL   time.Duration
	Shadow     bool
	ShadowWait time.Duration
}

// Decision is the immediate outcome of an Acquire: granted, refused with a
// predicted RetryAfter, or queued as Waiter.
type Decision struct {
	Granted    bool
	Grant      Grant
	Seq        uint64 // set for every outcome
	RetryAfter time.Duration
	Waiter     *Waiter
}

// Outcome is what happened to a granted call.
type Outcome uint8

const (
	Success     Outcome = iota // reached the provider and succeeded
	NotSent                    // never reached the provider: refund everything
	Failed                     // reached the provider and failed
	RateLimited                // the provider answered 429
)

// Settlement says how a Report was applied.
type Settlement uint8

const (
	Settled      Settlement = iota + 1 // the lease was open
	SettledLate                        // settled against a tombstone of an expired lease
	Duplicate                          // already reported: nothing changed
	UnknownGrant                       // not remembered: the usage was charged
)

// ID returns the grant's id.
func (g Grant) ID() GrantID { return GrantID{Epoch: g.Epoch, Seq: g.Seq} }

// NewPool returns a pool at its limits' initial levels.
func NewPool(cfg Config, now int64, epoch uint32) (*Pool, error) {
	p := &Pool{epoch: epoch, nextSeq: 1, grantUntil: never}
	if err := p.configure(cfg, now); err != nil {
		return nil, err
	}
	return p, nil
}

// configure installs cfg, keeping the level of every limit it shares with the old
// config (same resource and period) scaled to the new capacity.
func (p *Pool) configure(cfg Config, now int64) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	cfg.Limits, cfg.TenantWeights = slices.Clone(cfg.Limits), maps.Clone(cfg.TenantWeights)
	buckets := make([]bucket, len(cfg.Limits))
	var maxUnits [numResources]int64
	for i, l := range cfg.Limits {
		rate, _ := newBucketRate(l)
		b := bucket{rate: rate, configured: rate, full: now + rate.capNs - int64(l.Initial*float64(rate.capNs))}
		for j, old := range p.cfg.Limits {
			if old.Resource == l.Resource && old.Period == l.Period {
				b.full = now + scaleDeficit(p.buckets[j].deficit(now), p.buckets[j].rate.capNs, rate.capNs)
			}
		}
		buckets[i] = b
		maxUnits[l.Resource] = max(maxUnits[l.Resource], rate.capacity)
	}
	weights := make(map[string]float64, len(cfg.TenantWeights))
	for t, w := range cfg.TenantWeights {
		weights[t] = float64(w)
	}
	p.cfg, p.buckets, p.maxUnits, p.weights = cfg, buckets, maxUnits, weights
	return nil
}

// scaleDeficit keeps a bucket's fill fraction when its capacity changes, rounding
// the new deficit up.
func scaleDeficit(deficit, oldCap, newCap int64) int64 {
	if deficit <= 0 {
		return 0
	}
	f := float64(deficit) / float64(oldCap) * float64(newCap)
	if f >= float64(never) {
		return never
	}
	return int64(f) + 1
}

// Reconfigure applies a new config in place: levels scale to the new capacities,
// queue and leases stay. Waiters whose cost no longer fits fail with ErrCostTooLarge.
func (p *Pool) Reconfigure(now int64, cfg Config) error {
	p.Advance(now)
	if cfg.withDefaults().equal(p.cfg) {
		// Every config snapshot names every pool: one whose definition did not
		// change keeps what the provider taught it (lower limits, a spent quota).
		return nil
	}
	if err := p.configure(cfg, now); err != nil {
		return err
	}
	p.exhausted, p.exhaustedUntil = "", 0 // a config change is the operator's answer
	p.refit()
	p.serve(now)
	return nil
}

// refit follows a change of the pool's limits in the queue: waiters whose cost no
// longer fits fail with ErrCostTooLarge, the others take their new shares.
func (p *Pool) refit() {
	for _, t := range p.queue.tenants {
		t.weight = p.weight(t.name)
		for w := t.head; w != nil; {
			next := w.next
			if err := p.checkCost(w.cost); err != nil {
				p.dropWaiter(w, err)
			} else {
				w.share = p.share(w.cost)
			}
			w = next
		}
	}
}

// Config returns the pool's config with defaults applied.
func (p *Pool) Config() Config { return p.cfg }

func (p *Pool) weight(tenant string) float64 {
	if w, ok := p.weights[tenant]; ok {
		return w
	}
	return 1
}

// checkCost refuses a cost no bucket could ever hold.
func (p *Pool) checkCost(c Cost) error {
	for i, b := range p.buckets {
		l := p.cfg.Limits[i]
		if u := c.units(l.Resource); u > b.rate.capacity {
			return fmt.Errorf("%w: %s %d exceeds the capacity %d of the %d %s per %v limit",
				ErrCostTooLarge, l.Resource, u, b.rate.capacity, l.Amount, l.Resource, l.Period)
		}
	}
	return nil
}

// share is a cost's dominant share of the pool: the largest fraction of one limit's
// capacity (or of the concurrency cap) it takes.
func (p *Pool) share(c Cost) float64 {
	s := 0.0
	if p.cfg.Concurrent > 0 {
		s = 1 / float64(p.cfg.Concurrent)
	}
	for i, b := range p.buckets {
		s = max(s, float64(c.units(p.cfg.Limits[i].Resource))/float64(b.rate.capacity))
	}
	return s
}

// Acquire grants req at once, refuses it, or queues it. A retry with a request id the
// pool remembers attaches to the same waiter or returns the same grant.
func (p *Pool) Acquire(now int64, req Request) (Decision, error) {
	p.Advance(now)
	if err := validCost(req.Cost); err != nil {
		return Decision{}, err
	}
	if now >= p.grantUntil {
		return Decision{}, ErrFenced
	}
	if p.exhausted != "" {
		if err := p.exhaustedErr(now); err != nil {
			return Decision{}, err
		}
	}
	cost := req.Cost.normalized()
	if err := p.checkCost(cost); err != nil {
		return Decision{}, err
	}
	if req.RequestID != "" {
		if d, ok, err := p.retry(now, req, cost); ok || err != nil {
			return d, err
		}
	}
	seq := p.nextSeq
	p.nextSeq++
	if p.cfg.Shadow {
		wait := max(p.readyAt(now, cost)-now, 0)
		p.shadowWait += wait
		if wait > 0 {
			p.shadowDelayed++
		}
		g, err := p.grant(now, seq, cost, req.RequestID, now)
		g.Shadow, g.ShadowWait = true, time.Duration(wait)
		return Decision{Granted: err == nil, Grant: g, Seq: seq}, err
	}
	if p.queue.empty() && p.canPay(now, cost) {
		g, err := p.grant(now, seq, cost, req.RequestID, now)
		return Decision{Granted: err == nil, Grant: g, Seq: seq}, err
	}
	weight := p.weight(req.Tenant)
	wait := p.predict(now, req.Tenant, weight, cost)
	if req.MaxWait == 0 && wait == 0 {
		wait = p.concurrencyWait(now)
	}
	if req.MaxWait >= 0 && time.Duration(wait) > req.MaxWait || req.MaxWait == 0 {
		return Decision{Seq: seq, RetryAfter: time.Duration(wait)}, nil
	}
	if p.cfg.MaxQueueWait > 0 && time.Duration(wait) > p.cfg.MaxQueueWait {
		return Decision{}, fmt.Errorf("%w: predicted wait %v exceeds max_queue_wait %v", ErrQueueFull, time.Duration(wait), p.cfg.MaxQueueWait)
	}
	if p.queue.n >= p.cfg.MaxWaiters {
		return Decision{}, fmt.Errorf("%w: %d waiters (max_waiters)", ErrQueueFull, p.queue.n)
	}
	w := &Waiter{seq: seq, cost: cost, share: p.share(cost), requestID: req.RequestID, enqueued: now, attached: 1}
	p.queue.push(w, req.Tenant, weight)
	if req.RequestID != "" {
		if p.waitingReq == nil {
			p.waitingReq = make(map[string]*Waiter)
		}
		p.waitingReq[req.RequestID] = w
	}
	p.serve(now)
	if w.state == waiterGranted {
		return Decision{Granted: true, Grant: w.grant, Seq: seq}, nil
	}
	return Decision{Seq: seq, Waiter: w}, nil
}

func validCost(c Cost) error {
	for _, v := range [...]struct {
		name string
		v    int64
	}{{"requests", c.Requests}, {"input_tokens", c.InputTokens}, {"output_tokens", c.OutputTokens}} {
		if v.v < 0 || v.v > MaxUnits {
			return fmt.Errorf("%w: cost %s %d must be within [0, %d]", ErrInvalidCost, v.name, v.v, int64(MaxUnits))
		}
	}
	return nil
}

// retry answers an Acquire whose request id the pool remembers.
func (p *Pool) retry(now int64, req Request, cost Cost) (Decision, bool, error) {
	if w := p.waitingReq[req.RequestID]; w != nil {
		if w.cost != cost || w.tenant.name != req.Tenant {
			return Decision{}, false, fmt.Errorf("%w: request id %q was first used with %+v for tenant %q", ErrRequestIDReused, req.RequestID, w.cost, w.tenant.name)
		}
		if req.MaxWait == 0 { // try only: never wait, not even on the first call's waiter
			return Decision{Seq: w.seq, RetryAfter: time.Duration(max(p.NextWake(now)-now, 0))}, true, nil
		}
		w.attached++
		return Decision{Seq: w.seq, Waiter: w}, true, nil
	}
	l := p.byRequest[req.RequestID]
	if l == nil {
		return Decision{}, false, nil
	}
	if l.state == leaseOpen && l.cost != cost {
		return Decision{}, false, fmt.Errorf("%w: request id %q was first used with %+v", ErrRequestIDReused, req.RequestID, l.cost)
	}
	l.delivered = true
	return Decision{Granted: true, Seq: l.seq, Grant: p.grantOf(l, 0)}, true, nil
}

func (p *Pool) grantOf(l *lease, waited int64) Grant {
	return Grant{Seq: l.seq, Epoch: p.epoch, Cost: l.cost, Waited: time.Duration(waited), LeaseTTL: p.cfg.LeaseTTL}
}

// canPay reports whether cost could be granted at now.
func (p *Pool) canPay(now int64, cost Cost) bool {
	if now >= p.grantUntil {
		return false
	}
	if p.cfg.Concurrent > 0 && p.inFlight+p.phantoms >= p.cfg.Concurrent {
		return false
	}
	return p.readyAt(now, cost) <= now
}

// readyAt returns when every bucket can pay cost and no pause holds, ignoring the
// queue and the concurrency cap.
func (p *Pool) readyAt(now int64, cost Cost) int64 {
	t := max(now, p.paused)
	for i := range p.buckets {
		b := &p.buckets[i]
		t = max(t, b.readyAt(now, b.rate.nsFor(cost.units(p.cfg.Limits[i].Resource))))
	}
	return t
}

// predict returns the wait (ns) a new waiter of tenant would have: the time until
// every bucket has refilled the cost the queue will grant before it, and its own.
// That cost may exceed a bucket's capacity (the queue pays it over time), so it is
// not bounded by the capacity as readyAt is.
func (p *Pool) predict(now int64, tenant string, weight float64, cost Cost) int64 {
	ahead := p.queue.ahead(tenant, weight, cost)
	t := max(now, p.paused)
	for i := range p.buckets {
		b := &p.buckets[i]
		t = max(t, b.full+b.rate.nsFor(ahead.units(p.cfg.Limits[i].Resource))-b.rate.capNs)
	}
	return t - now
}

// concurrencyWait bounds the wait for a concurrency slot: the earliest expiry of an
// open lease (a Report usually frees one sooner), or the end of the phantom slots
// a takeover holds.
func (p *Pool) concurrencyWait(now int64) int64 {
	switch {
	case p.cfg.Concurrent == 0 || p.inFlight+p.phantoms < p.cfg.Concurrent:
		return 0
	case p.inFlight >= p.cfg.Concurrent && p.open.head != nil:
		return max(p.open.head.expires-now, 0)
	case p.phantoms > 0:
		return max(p.phantomUntil-now, 0)
	}
	return 0
}

// grant debits cost from every bucket and opens a lease.
func (p *Pool) grant(now int64, seq uint64, cost Cost, requestID string, enqueued int64) (Grant, error) {
	if p.open.n >= p.cfg.MaxLeases {
		return Grant{}, fmt.Errorf("%w: %d open leases", ErrQueueFull, p.open.n)
	}
	for i := range p.buckets {
		b := &p.buckets[i]
		b.debit(now, b.rate.nsFor(cost.units(p.cfg.Limits[i].Resource)))
	}
	p.granted = p.granted.add(cost)
	l := p.newLease()
	*l = lease{seq: seq, cost: cost, requestID: requestID, expires: now + int64(p.cfg.LeaseTTL), grantedAfter: p.granted, refundedAtGrant: p.refunded, grantedAt: now}
	if p.leases == nil {
		p.leases = make(map[uint64]*lease)
	}
	p.leases[seq] = l
	p.open.insert(l)
	if requestID != "" {
		if p.byRequest == nil {
			p.byRequest = make(map[string]*lease)
		}
		p.byRequest[requestID] = l
	}
	p.inFlight++
	p.unsettled = p.unsettled.add(cost)
	return p.grantOf(l, now-enqueued), nil
}

// tick lets time pass: leases that ran out become tombstones, old tombstones go.
func (p *Pool) tick(now int64) {
	for l := p.open.head; l != nil && l.expires <= now; l = p.open.head {
		p.open.remove(l)
		p.closeLease(l)
		p.unreported++
		l.state = leaseExpired
		l.expires += int64(p.cfg.TombstoneTTL)
		p.tombs.insert(l)
	}
	p.forgetTombstones(now)
	p.expireProviderLimits(now)
	if p.phantoms > 0 && now >= p.phantomUntil {
		p.phantoms = 0
	}
}

func (p *Pool) forgetTombstones(now int64) {
	for l := p.tombs.head; l != nil && (l.expires <= now || p.tombs.n > p.cfg.MaxTombstones); l = p.tombs.head {
		p.tombs.remove(l)
		p.forget(l)
	}
}

// closeLease frees an open lease's slot and unsettled estimate.
func (p *Pool) closeLease(l *lease) {
	p.inFlight--
	p.unsettled = p.unsettled.sub(l.cost)
}

func (p *Pool) forget(l *lease) {
	delete(p.leases, l.seq)
	if l.requestID != "" && p.byRequest[l.requestID] == l {
		delete(p.byRequest, l.requestID)
	}
	if len(p.free) < maxFreeLeases {
		*l = lease{}
		p.free = append(p.free, l)
	}
}

// newLease returns a forgotten lease for reuse, or a new one.
func (p *Pool) newLease() *lease {
	if n := len(p.free); n > 0 {
		l := p.free[n-1]
		p.free = p.free[:n-1]
		return l
	}
	return &lease{}
}

// serve grants waiters in queue order for as long as the next one can be paid.
func (p *Pool) serve(now int64) {
	for {
		w := p.queue.next()
		if w == nil || !p.canPay(now, w.cost) {
			return
		}
		p.queue.charge(w)
		p.queue.remove(w)
		p.forgetWaiterID(w)
		g, err := p.grant(now, w.seq, w.cost, w.requestID, w.enqueued)
		if err != nil {
			p.finish(w, waiterFailed, Grant{}, err)
			continue
		}
		p.finish(w, waiterGranted, g, nil)
	}
}

func (p *Pool) forgetWaiterID(w *Waiter) {
	if w.requestID != "" && p.waitingReq[w.requestID] == w {
		delete(p.waitingReq, w.requestID)
	}
}

func (p *Pool) finish(w *Waiter, state waiterState, g Grant, err error) {
	w.state, w.grant, w.err = state, g, err
	if w.done != nil {
		close(w.done)
	}
}

// dropWaiter takes w out of the queue and fails it with err.
func (p *Pool) dropWaiter(w *Waiter, err error) {
	p.queue.remove(w)
	p.forgetWaiterID(w)
	p.finish(w, waiterFailed, Grant{}, err)
}

// Leave detaches one caller from w. When no caller is left, a waiting w leaves
// the queue without being charged, and a grant nobody will receive is refunded.
func (p *Pool) Leave(now int64, w *Waiter) {
	p.tick(now)
	defer p.serve(now)
	w.attached--
	if w.attached > 0 {
		return
	}
	switch w.state {
	case waiting:
		p.dropWaiter(w, ErrCancelled)
	case waiterGranted:
		if w.delivered {
			break
		}
		if l := p.leases[w.grant.Seq]; l != nil && l.state == leaseOpen && !l.delivered {
			if l.requestID != "" {
				delete(p.byRequest, l.requestID)
				l.requestID = ""
			}
			p.settle(now, l, Cost{})
		}
	}
}

// Drain fails every waiter with err (pool removed, shutdown).
func (p *Pool) Drain(err error) {
	for _, t := range p.queue.tenants {
		for w := t.head; w != nil; {
			next := w.next
			p.dropWaiter(w, err)
			w = next
		}
	}
}

// localSeq returns the sequence of id in this pool, or 0 (no grant) when id belongs
// to another incarnation of the pool.
func (p *Pool) localSeq(id GrantID) uint64 {
	if id.Epoch != p.epoch {
		return 0
	}
	return id.Seq
}

// Renew extends an open lease by the pool's lease TTL from now.
func (p *Pool) Renew(now int64, seq uint64) (time.Duration, error) {
	p.Advance(now)
	l := p.leases[seq]
	if l == nil || l.state != leaseOpen {
		return 0, fmt.Errorf("%w: no open lease for grant %d", ErrGrantNotFound, seq)
	}
	p.open.remove(l)
	l.expires = now + int64(p.cfg.LeaseTTL)
	p.open.insert(l)
	return p.cfg.LeaseTTL, nil
}

// Usage is what a call used, as the provider reported it.
type Usage struct {
	InputTokens  int64
	OutputTokens int64
}

// ReportResult says how a Report was applied and what the grant finally costs.
type ReportResult struct {
	Settlement Settlement
	Charged    Cost
}

// Report settles grant seq with its actual usage: the difference from the estimate
// is refunded or charged (buckets may go into debt). NotSent refunds everything;
// Failed and RateLimited keep the estimate unless a usage is given. RateLimited
// with retryAfter pauses the pool.
func (p *Pool) Report(now int64, seq uint64, u Usage, outcome Outcome, retryAfter time.Duration) (ReportResult, error) {
	p.tick(now)
	defer p.serve(now)
	if err := p.checkUsage(u); err != nil {
		return ReportResult{}, err
	}
	var res ReportResult
	l := p.leases[seq]
	if outcome == RateLimited && retryAfter > 0 && (l == nil || l.state != leaseReported) {
		p.paused = max(p.paused, now+min(int64(retryAfter), never))
	}
	switch {
	case l == nil:
		actual := Cost{InputTokens: u.InputTokens, OutputTokens: u.OutputTokens}
		if outcome == NotSent {
			actual = Cost{}
		}
		for i := range p.buckets {
			b := &p.buckets[i]
			b.debit(now, b.rate.nsFor(actual.units(p.cfg.Limits[i].Resource)))
		}
		res = ReportResult{Settlement: UnknownGrant, Charged: actual}
	case l.state == leaseReported:
		res = ReportResult{Settlement: Duplicate, Charged: l.cost}
	default:
		res.Settlement = Settled
		if l.state == leaseExpired {
			res.Settlement = SettledLate
		}
		p.settle(now, l, actualCost(l.cost, u, outcome))
		res.Charged = l.cost
	}
	return res, nil
}

func actualCost(estimate Cost, u Usage, outcome Outcome) Cost {
	switch {
	case outcome == NotSent:
		return Cost{}
	case (outcome == Failed || outcome == RateLimited) && u == Usage{}:
		return estimate
	}
	return Cost{Requests: estimate.Requests, InputTokens: u.InputTokens, OutputTokens: u.OutputTokens}
}

// settle turns l's charge into actual and makes l a reported tombstone.
func (p *Pool) settle(now int64, l *lease, actual Cost) {
	for i := range p.buckets {
		b := &p.buckets[i]
		r := p.cfg.Limits[i].Resource
		est, act := l.cost.units(r), actual.units(r)
		if act < est {
			b.refund(now, b.rate.nsRefund(est-act))
		} else if act > est {
			b.debit(now, b.rate.nsFor(act-est))
		}
	}
	if l.state == leaseOpen {
		p.open.remove(l)
		p.closeLease(l)
	} else {
		p.tombs.remove(l)
	}
	p.refunded = p.refunded.add(l.cost.sub(actual))
	l.cost = actual
	l.state = leaseReported
	l.expires = now + int64(p.cfg.TombstoneTTL)
	p.tombs.insert(l)
	p.forgetTombstones(now)
}

// checkUsage refuses usage larger than the pool's largest bucket for a resource.
func (p *Pool) checkUsage(u Usage) error {
	if u.InputTokens < 0 || u.OutputTokens < 0 || u.InputTokens > MaxUnits || u.OutputTokens > MaxUnits {
		return fmt.Errorf("%w: input_tokens %d and output_tokens %d must be within [0, %d]", ErrInvalidUsage, u.InputTokens, u.OutputTokens, int64(MaxUnits))
	}
	c := Cost{InputTokens: u.InputTokens, OutputTokens: u.OutputTokens}
	for r := Tokens; r < numResources; r++ {
		if limit := p.maxUnits[r]; limit > 0 && c.units(r) > limit {
			return fmt.Errorf("%w: %s %d exceeds the largest %s bucket of the pool (%d)", ErrInvalidUsage, r, c.units(r), r, limit)
		}
	}
	return nil
}

// Pause stops grants until the instant until (a provider 429's retry-after).
func (p *Pool) Pause(now, until int64) {
	p.tick(now)
	p.paused = max(p.paused, until)
	p.serve(now)
}

// NextWake returns when the queue's next waiter can be paid, so the caller can arm
// one timer, or 0 when nothing waits.
func (p *Pool) NextWake(now int64) int64 {
	w := p.queue.next()
	if w == nil {
		return 0
	}
	t := p.readyAt(now, w.cost)
	if t <= now && p.cfg.Concurrent > 0 && p.inFlight+p.phantoms >= p.cfg.Concurrent {
		switch {
		case p.inFlight >= p.cfg.Concurrent && p.open.head != nil:
			t = p.open.head.expires
		case p.phantoms > 0:
			t = p.phantomUntil
		}
	}
	return max(t, now)
}

// SetGrantUntil fences the pool: it grants nothing from the instant until on
// (the end of the cluster's certificates for this node). A node alone never sets it.
func (p *Pool) SetGrantUntil(until int64) { p.grantUntil = until }

// Fenced reports whether the fence holds at now.
func (p *Pool) Fenced(now int64) bool { return now >= p.grantUntil }

// Advance lets time pass and grants what can be granted.
func (p *Pool) Advance(now int64) {
	p.tick(now)
	p.serve(now)
}

// Idle reports whether the pool holds nothing: no waiter, no lease, no tombstone,
// every bucket full, no pause. An idle pool is the same as a new full one.
func (p *Pool) Idle(now int64) bool {
	p.Advance(now)
	if !p.queue.empty() || p.open.n > 0 || p.tombs.n > 0 || p.paused > now {
		return false
	}
	for i := range p.buckets {
		if p.buckets[i].deficit(now) > 0 {
			return false
		}
	}
	return true
}
