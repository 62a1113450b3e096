package limiter

import (
	"errors"
	"maps"
	"math/big"
	"slices"
	"time"

	"testing"

	"pgregory.net/rapid"
)

// What the engine guarantees, and what these properties check.
//
// Grant decisions are safe: a grant is made only when every bucket holds its whole
// cost, given everything charged and refunded before it. Reports may then charge
// more than the estimate (a bucket goes into debt: the call happened), so a
// replay of the final charges can go below zero after a grant; what must hold is
// the decision itself. The reference replays, per limit, with exact rational
// arithmetic (level(t) = min(capacity, level + amount/period x dt) from the initial
// level):
//   - at its grant instant, each grant's estimate (all of it, requests included);
//   - at report time, a settlement's difference from the estimate: a refund
//     (capped at the capacity) or an extra charge; NotSent refunds everything;
//   - at report time, the usage of a Report the pool does not remember.
// Expired leases keep their estimate charged; cancelled waiters charge nothing.
//
// (a) At every grant instant, each limit's reference level, with all prior charges
// and settlements applied (and other grants of the same instant, in any order), is
// at least the grant's cost. The engine keeps nanoseconds of refill, rounding a
// debit up and a refund down, so its bucket never holds more than the reference
// except that its capacity is rounded up to a whole nanosecond: the tolerance is
// one nanosecond of refill.
//
// (b) Within a tenant, grants follow sequence order: once a call is granted, no
// earlier call of its tenant still waits.
//
// (c) No call is granted twice, a retry with a request id the pool remembers is
// answered with the first grant and charged nothing, and the pool's in-flight
// count, unsettled cost, waiters and tombstones match the model's leases.

// refBucket is one limit's exact reference bucket.
type refBucket struct {
	res   Resource
	cap   *big.Rat
	rate  *big.Rat // units per nanosecond
	level *big.Rat
	at    int64
}

func newRefBucket(l Limit, now int64) *refBucket {
	capacity := big.NewRat(l.capacity(), 1)
	level := new(big.Rat).SetFloat64(l.Initial)
	level.Mul(level, capacity)
	return &refBucket{res: l.Resource, cap: capacity, rate: big.NewRat(l.Amount, int64(l.Period)), level: level, at: now}
}

func (b *refBucket) advance(now int64) {
	if now <= b.at {
		return
	}
	b.level.Add(b.level, new(big.Rat).Mul(b.rate, big.NewRat(now-b.at, 1)))
	if b.level.Cmp(b.cap) > 0 {
		b.level.Set(b.cap)
	}
	b.at = now
}

func (b *refBucket) add(now, units int64) {
	b.advance(now)
	b.level.Add(b.level, big.NewRat(units, 1))
	if b.level.Cmp(b.cap) > 0 {
		b.level.Set(b.cap)
	}
}

// holds reports whether the bucket holds units at now, within one nanosecond of
// refill.
func (b *refBucket) holds(now, units int64) bool {
	b.advance(now)
	slack := new(big.Rat).Add(b.level, b.rate)
	return slack.Cmp(big.NewRat(units, 1)) >= 0
}

type modelWaiter struct {
	w        *Waiter
	seq      uint64
	tenant   string
	cost     Cost
	reqID    string
	enqueued int64
	attached int
}

type modelGrant struct {
	seq      uint64
	tenant   string
	est      Cost // charged at the grant
	cost     Cost // est, then what the Report settled
	reqID    string
	expires  int64
	reported bool
	forgetAt int64 // when reported
}

// poolModel drives a Pool and checks it against the reference.
type poolModel struct {
	cfg     Config // defaults applied
	p       *Pool
	now     int64
	ref     []*refBucket
	nextSeq uint64
	waiting []*modelWaiter
	grants  map[uint64]*modelGrant
	byReq   map[string]uint64
	maxTok  [numResources]int64
	called  int64 // when the pool was last called
}

func (m *poolModel) open(g *modelGrant) bool { return !g.reported && m.now < g.expires }

// remembered reports whether the pool still knows g: open, or a tombstone.
func (m *poolModel) remembered(g *modelGrant) bool {
	if m.open(g) {
		return true
	}
	if g.reported {
		return m.now < g.forgetAt
	}
	return m.now < g.expires+int64(m.cfg.TombstoneTTL)
}

func (m *poolModel) tooLarge(c Cost) bool {
	for _, l := range m.cfg.Limits {
		if c.units(l.Resource) > l.capacity() {
			return true
		}
	}
	return false
}

func (m *poolModel) waiterByReq(id string) *modelWaiter {
	for _, mw := range m.waiting {
		if mw.reqID == id && id != "" {
			return mw
		}
	}
	return nil
}

// granted records a grant made at m.now and checks it against the reference.
func (m *poolModel) granted(t *rapid.T, seq uint64, tenant string, cost Cost, reqID string) {
	if _, dup := m.grants[seq]; dup {
		t.Fatalf("seq %d granted twice", seq)
	}
	for _, b := range m.ref {
		u := cost.units(b.res)
		if !b.holds(m.now, u) {
			t.Fatalf("grant %d at %v: %v level %s below its cost %d", seq, time.Duration(m.now), b.res, b.level.FloatString(3), u)
		}
		b.add(m.now, -u)
	}
	m.grants[seq] = &modelGrant{seq: seq, tenant: tenant, est: cost, cost: cost, reqID: reqID, expires: m.now + int64(m.cfg.LeaseTTL)}
	if reqID != "" {
		m.byReq[reqID] = seq
	}
}

// collect records the waiters the last call granted, and checks FIFO within each
// tenant.
func (m *poolModel) collect(t *rapid.T) {
	m.called = m.now
	var still []*modelWaiter
	var done []*modelWaiter
	for _, mw := range m.waiting {
		switch mw.w.state {
		case waiting:
			still = append(still, mw)
		case waiterGranted:
			g := mw.w.grant
			if g.Seq != mw.seq || g.Cost != mw.cost || g.Waited != time.Duration(m.now-mw.enqueued) {
				t.Fatalf("waiter %d granted %+v at %v (enqueued at %v, cost %+v)", mw.seq, g, time.Duration(m.now), time.Duration(mw.enqueued), mw.cost)
			}
			m.granted(t, mw.seq, mw.tenant, mw.cost, mw.reqID)
			done = append(done, mw)
		default:
			t.Fatalf("waiter %d failed unexpectedly: %v", mw.seq, mw.w.err)
		}
	}
	m.waiting = still
	for _, d := range done {
		for _, s := range still {
			if s.tenant == d.tenant && s.seq < d.seq {
				t.Fatalf("tenant %q: seq %d granted while seq %d still waits", d.tenant, d.seq, s.seq)
			}
		}
	}
}

func (m *poolModel) check(t *rapid.T) {
	// Status lets time pass and grants what it can, like every call: collect
	// those grants first, so the model and the pool compare at the same point.
	m.p.Advance(m.now)
	m.collect(t)
	s := m.p.Status(m.now)
	var inFlight int64
	var tombs int
	var unsettled Cost
	for _, g := range m.grants {
		switch {
		case m.open(g):
			inFlight++
			unsettled = unsettled.add(g.est)
		case m.remembered(g):
			tombs++
		}
	}
	if s.InFlight != inFlight || s.Unsettled != unsettled || s.Tombstones != tombs {
		t.Fatalf("at %v: in flight %d, unsettled %v, tombstones %d; model %d, %+v, %d",
			time.Duration(m.now), s.InFlight, s.Unsettled, s.Tombstones, inFlight, unsettled, tombs)
	}
	if s.Waiters != len(m.waiting) || s.NextSequence != m.nextSeq {
		t.Fatalf("waiters %d, next sequence %d; model %d, %d", s.Waiters, s.NextSequence, len(m.waiting), m.nextSeq)
	}
	if m.cfg.Concurrent > 0 && inFlight > m.cfg.Concurrent {
		t.Fatalf("%d in flight over the cap %d", inFlight, m.cfg.Concurrent)
	}
	// Every call ends by granting what it can: the head is not payable until time moves.
	if len(m.waiting) > 0 && m.called == m.now {
		if wake := m.p.NextWake(m.now); wake <= m.now {
			t.Fatalf("NextWake %d not after now %d with %d waiting: the head is payable", wake, m.now, len(m.waiting))
		}
	}
}

func genConfig(t *rapid.T) Config {
	initial := rapid.SampledFrom([]float64{0, 0.5, 1})
	limits := []Limit{perSecond(rapid.Int64Range(2, 20).Draw(t, "rps"), rapid.Int64Range(2, 5).Draw(t, "burst"), initial.Draw(t, "init0"))}
	if rapid.Bool().Draw(t, "tpm") {
		limits = append(limits, tokensPerMinute(rapid.Int64Range(100, 5000).Draw(t, "tokens"), initial.Draw(t, "init1")))
	}
	if rapid.Bool().Draw(t, "third") {
		l := rapid.SampledFrom([]Limit{
			{Resource: Requests, Amount: 30, Period: time.Minute},
			{Resource: InputTokens, Amount: 20000, Period: time.Hour},
			{Resource: OutputTokens, Amount: 300, Period: 10 * time.Second, Capacity: 200},
		}).Draw(t, "limit2")
		l.Initial = initial.Draw(t, "init2")
		limits = append(limits, l)
	}
	return Config{
		Limits:       limits,
		Concurrent:   rapid.Int64Range(0, 4).Draw(t, "concurrent"),
		LeaseTTL:     time.Duration(rapid.Int64Range(1, 10).Draw(t, "leaseTTL")) * time.Second,
		TombstoneTTL: time.Duration(rapid.Int64Range(1, 20).Draw(t, "tombTTL")) * time.Second,
		MaxWaiters:   rapid.SampledFrom([]int{1, 3, 10, 50}).Draw(t, "maxWaiters"),
		MaxQueueWait: rapid.SampledFrom([]time.Duration{0, 2 * time.Second, 10 * time.Second}).Draw(t, "maxQueueWait"),
		TenantWeights: map[string]int64{
			"a": rapid.Int64Range(1, 3).Draw(t, "weightA"),
			"b": rapid.Int64Range(1, 3).Draw(t, "weightB"),
		},
	}
}

func TestPoolProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := genConfig(t)
		p, err := NewPool(cfg, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		m := &poolModel{cfg: cfg.withDefaults(), p: p, nextSeq: 1, grants: map[uint64]*modelGrant{}, byReq: map[string]uint64{}}
		tokCap := int64(100)
		for _, l := range cfg.Limits {
			m.ref = append(m.ref, newRefBucket(l, 0))
			m.maxTok[l.Resource] = max(m.maxTok[l.Resource], l.capacity())
			if l.Resource != Requests {
				tokCap = max(tokCap, l.capacity())
			}
		}
		reqID := rapid.SampledFrom([]string{"", "", "", "r1", "r2", "r3", "r4"})
		pickGrant := func(t *rapid.T) uint64 {
			if len(m.grants) == 0 || rapid.IntRange(0, 9).Draw(t, "unknownGrant") == 0 {
				return m.nextSeq + 100
			}
			seqs := make([]uint64, 0, len(m.grants))
			for s := range m.grants {
				seqs = append(seqs, s)
			}
			slices.Sort(seqs)
			return rapid.SampledFrom(seqs).Draw(t, "seq")
		}

		actions := map[string]func(*rapid.T){
			"acquire": func(t *rapid.T) {
				req := Request{
					Tenant:    rapid.SampledFrom([]string{"a", "b", "c"}).Draw(t, "tenant"),
					Cost:      Cost{Requests: rapid.Int64Range(0, 2).Draw(t, "requests"), InputTokens: rapid.Int64Range(0, tokCap*55/100).Draw(t, "in"), OutputTokens: rapid.Int64Range(0, tokCap*55/100).Draw(t, "out")},
					MaxWait:   rapid.SampledFrom([]time.Duration{0, -1, -1, -1, time.Second, 5 * time.Second, time.Minute}).Draw(t, "maxWait"),
					RequestID: reqID.Draw(t, "requestID"),
				}
				// Retries mostly repeat what their first call asked.
				if mw := m.waiterByReq(req.RequestID); mw != nil && rapid.IntRange(0, 3).Draw(t, "sameAsWaiter") > 0 {
					req.Tenant, req.Cost = mw.tenant, mw.cost
				} else if seq, ok := m.byReq[req.RequestID]; ok && rapid.IntRange(0, 3).Draw(t, "sameAsGrant") > 0 {
					req.Tenant, req.Cost = m.grants[seq].tenant, m.grants[seq].est
				}
				cost := req.Cost.normalized()
				mw := m.waiterByReq(req.RequestID)
				var g *modelGrant
				if seq, ok := m.byReq[req.RequestID]; ok && req.RequestID != "" && m.remembered(m.grants[seq]) {
					g = m.grants[seq]
				}
				d, err := m.p.Acquire(m.now, req)
				switch {
				case m.tooLarge(cost):
					if !errors.Is(err, ErrCostTooLarge) {
						t.Fatalf("cost %+v over a capacity: %+v, %v", cost, d, err)
					}
				case mw != nil:
					if mw.cost != cost || mw.tenant != req.Tenant {
						if !errors.Is(err, ErrRequestIDReused) {
							t.Fatalf("reused id %q with another request: %+v, %v", req.RequestID, d, err)
						}
						break
					}
					// The waiter may have been granted as time passed, then the retry
					// returns its grant.
					attachedOK := err == nil && d.Waiter == mw.w && d.Seq == mw.seq
					grantOK := err == nil && d.Granted && d.Grant.Seq == mw.seq && mw.w.state == waiterGranted
					// A try-only retry never waits: refused unless already granted.
					refusedOK := req.MaxWait == 0 && err == nil && !d.Granted && d.Waiter == nil && d.Seq == mw.seq && d.RetryAfter >= 0
					if req.MaxWait == 0 {
						attachedOK = false
					}
					if !attachedOK && !grantOK && !refusedOK {
						t.Fatalf("retry of waiter %d: %+v, %v", mw.seq, d, err)
					}
					if attachedOK {
						mw.attached++
					}
				case g != nil:
					if m.open(g) && g.cost != cost {
						if !errors.Is(err, ErrRequestIDReused) {
							t.Fatalf("reused id %q with another cost: %+v, %v", req.RequestID, d, err)
						}
						break
					}
					if err != nil || !d.Granted || d.Grant.Seq != g.seq || d.Grant.Cost != g.cost {
						t.Fatalf("retry of grant %d (%+v): %+v, %v", g.seq, g.cost, d, err)
					}
				default:
					seq := m.nextSeq
					m.nextSeq++
					switch {
					case err != nil:
						if !errors.Is(err, ErrQueueFull) {
							t.Fatalf("Acquire: %v", err)
						}
					case d.Granted:
						if d.Seq != seq || d.Grant.Seq != seq || d.Grant.Cost != cost || d.Grant.Waited != 0 {
							t.Fatalf("immediate grant %+v, want seq %d cost %+v", d, seq, cost)
						}
						m.collect(t) // waiters served first, at the same instant
						if len(m.waiting) > 0 {
							t.Fatalf("granted seq %d at once past %d waiters", seq, len(m.waiting))
						}
						m.granted(t, seq, req.Tenant, cost, req.RequestID)
					case d.Waiter != nil:
						if d.Seq != seq || req.MaxWait == 0 {
							t.Fatalf("queued %+v, want seq %d (max wait %v)", d, seq, req.MaxWait)
						}
						m.waiting = append(m.waiting, &modelWaiter{w: d.Waiter, seq: seq, tenant: req.Tenant, cost: cost, reqID: req.RequestID, enqueued: m.now, attached: 1})
					default:
						if d.Seq != seq || d.RetryAfter < 0 || req.MaxWait < 0 || req.MaxWait > 0 && d.RetryAfter <= req.MaxWait {
							t.Fatalf("refused %+v with max wait %v", d, req.MaxWait)
						}
					}
				}
				m.collect(t)
			},
			"report": func(t *rapid.T) {
				seq := pickGrant(t)
				u := Usage{InputTokens: rapid.Int64Range(0, tokCap*6/10).Draw(t, "usageIn"), OutputTokens: rapid.Int64Range(0, tokCap*6/10).Draw(t, "usageOut")}
				outcome := Outcome(rapid.IntRange(0, 3).Draw(t, "outcome"))
				retryAfter := rapid.SampledFrom([]time.Duration{0, 0, time.Second}).Draw(t, "retryAfter")
				res, err := m.p.Report(m.now, seq, u, outcome, retryAfter)
				used := Cost{InputTokens: u.InputTokens, OutputTokens: u.OutputTokens}
				for r := Tokens; r < numResources; r++ {
					if m.maxTok[r] > 0 && used.units(r) > m.maxTok[r] {
						if !errors.Is(err, ErrInvalidUsage) {
							t.Fatalf("usage %+v over the largest bucket: %+v, %v", u, res, err)
						}
						m.collect(t)
						return
					}
				}
				if err != nil {
					t.Fatalf("Report: %v", err)
				}
				g := m.grants[seq]
				switch {
				case g == nil || !m.remembered(g):
					if outcome == NotSent {
						used = Cost{} // never reached the provider
					}
					if res.Settlement != UnknownGrant || res.Charged != used {
						t.Fatalf("Report of unknown %d = %+v", seq, res)
					}
					for _, b := range m.ref {
						b.add(m.now, -used.units(b.res))
					}
				case g.reported:
					if res.Settlement != Duplicate || res.Charged != g.cost {
						t.Fatalf("second Report of %d = %+v, want Duplicate %+v", seq, res, g.cost)
					}
				default:
					want := Settled
					if !m.open(g) {
						want = SettledLate
					}
					actual := Cost{Requests: g.est.Requests, InputTokens: u.InputTokens, OutputTokens: u.OutputTokens}
					switch {
					case outcome == NotSent:
						actual = Cost{}
					case (outcome == Failed || outcome == RateLimited) && u == Usage{}:
						actual = g.est
					}
					if res.Settlement != want || res.Charged != actual {
						t.Fatalf("Report of %d = %+v, want %v charged %+v", seq, res, want, actual)
					}
					for _, b := range m.ref {
						b.add(m.now, g.est.units(b.res)-actual.units(b.res))
					}
					g.cost, g.reported, g.forgetAt = actual, true, m.now+int64(m.cfg.TombstoneTTL)
				}
				m.collect(t)
			},
			"renew": func(t *rapid.T) {
				seq := pickGrant(t)
				g := m.grants[seq]
				ttl, err := m.p.Renew(m.now, seq)
				if g != nil && m.open(g) {
					if err != nil || ttl != m.cfg.LeaseTTL {
						t.Fatalf("Renew of open %d: %v, %v", seq, ttl, err)
					}
					g.expires = m.now + int64(m.cfg.LeaseTTL)
				} else if !errors.Is(err, ErrGrantNotFound) {
					t.Fatalf("Renew of %d (not open): %v", seq, err)
				}
				m.collect(t)
			},
			"cancel": func(t *rapid.T) {
				if len(m.waiting) == 0 {
					return
				}
				mw := rapid.SampledFrom(m.waiting).Draw(t, "waiter")
				m.p.Leave(m.now, mw.w)
				mw.attached--
				if mw.attached == 0 {
					if mw.w.state != waiterFailed || !errors.Is(mw.w.err, ErrCancelled) {
						t.Fatalf("left waiter %d: state %d, %v", mw.seq, mw.w.state, mw.w.err)
					}
					m.waiting = slices.DeleteFunc(m.waiting, func(x *modelWaiter) bool { return x == mw })
				}
				m.collect(t)
			},
			"step": func(t *rapid.T) {
				m.now += rapid.SampledFrom([]int64{0, 1, ms, 100 * ms, 700 * ms, 3 * sec}).Draw(t, "step")
				if rapid.Bool().Draw(t, "advance") {
					m.p.Advance(m.now)
					m.collect(t)
				}
			},
			"wake": func(t *rapid.T) {
				wake := m.p.NextWake(m.now)
				if wake == 0 {
					return
				}
				if rapid.IntRange(0, 3).Draw(t, "early") == 0 && wake-1 > m.now {
					wake--
				}
				m.now = wake
				m.p.Advance(m.now)
				m.collect(t)
			},
		}
		// Acquires and wake-ups weigh more, so that queues build up and drain.
		names := append(slices.Sorted(maps.Keys(actions)), "acquire", "acquire", "wake", "wake")
		steps := rapid.IntRange(1, 1000).Draw(t, "steps")
		for range steps {
			actions[rapid.SampledFrom(names).Draw(t, "action")](t)
			m.check(t)
		}
	})
}
