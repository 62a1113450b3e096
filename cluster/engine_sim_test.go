package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/quotad/quotad/limiter"
	statev1 "github.com/quotad/quotad/proto/quotad/state/v1"
)

// The fence with the engine: every simulated node holds a limiter.Pool per pool
// and reconciles it with its Quorum as Node does (decide), replicating owned
// pools to heirs and handing off lost ones over the same faulty network. Every
// node that may grant asks for one request at every step, so each pool is always
// saturated. Every grant, at the real time it was made, goes through a reference
// bucket of the pool's limit: it must never go below zero.

const (
	simRate  = 10 // requests per second
	simBurst = 10
	// simDrift: nodes' clocks run up to 1% fast, so their buckets refill up to 1%
	// faster than real time; the reference bucket allows that much.
	simDrift = 0.01
)

type simEngines struct {
	pools []string
	ref   map[string]*refBucket
}

type refBucket struct {
	level   float64 // requests
	at      int64   // real time of level
	granted int
	started bool
}

// start sets the bucket at the first takeover to less than one request: before
// it nobody granted, so the provider's bucket may be that low then (a takeover
// charges whole requests).
func (b *refBucket) start(now int64) {
	if !b.started {
		b.started, b.level, b.at = true, 1, now
	}
}

func (b *refBucket) grant(t *testing.T, pool string, now int64) {
	b.level = min(simBurst, b.level+float64(now-b.at)/1e9*simRate*(1+simDrift))
	b.at = now
	b.level--
	b.granted++
	if b.level < -1e-9 {
		t.Fatalf("t=%v: pool %s: reference bucket below zero (%.3f) after %d grants", time.Duration(now), pool, b.level, b.granted)
	}
}

// simEngine is one node's engine: the Node's bookkeeping over plain Pools.
type simEngine struct {
	pools    map[string]*limiter.Pool
	owned    map[string]bool
	lease    map[string]int64
	replicas map[string]simReplica
	nextSync int64
}

type simReplica struct {
	st      *statev1.PoolState
	final   bool
	arrived int64 // the receiver's clock
}

func (e *simEngines) newEngine(s *simNet, n *simNode) *simEngine {
	eng := &simEngine{pools: map[string]*limiter.Pool{}, owned: map[string]bool{}, lease: map[string]int64{}, replicas: map[string]simReplica{}}
	now := n.clock(s.now)
	for i, pool := range e.pools {
		p, err := limiter.NewPool(limiter.Config{Limits: []limiter.Limit{{Resource: limiter.Requests, Amount: simRate, Capacity: simBurst, Period: time.Second}}}, now, uint32(i))
		if err != nil {
			s.t.Fatal(err)
		}
		eng.pools[pool] = p
	}
	return eng
}

func (e *simEngines) deliver(s *simNet, dst *simNode, m simMsg) {
	now := dst.clock(s.now)
	old, ok := dst.eng.replicas[m.state.GetPool()]
	if ok && old.final && !m.final {
		return // a pending handoff is newer than any replica
	}
	dst.eng.replicas[m.state.GetPool()] = simReplica{st: m.state, final: m.final, arrived: now}
}

func (e *simEngines) step(s *simNet) {
	for _, id := range s.order {
		n := s.nodes[id]
		if n.dead || n.paused {
			continue
		}
		now := n.clock(s.now)
		eng := n.eng
		if now >= eng.nextSync {
			eng.nextSync = now + int64(100*time.Millisecond)
			e.reconcile(s, n, now)
			e.replicate(s, n, now)
		}
		for _, pool := range e.pools {
			p := eng.pools[pool]
			if !eng.owned[pool] {
				continue
			}
			p.SetGrantUntil(eng.lease[pool])
			d, err := p.Acquire(now, limiter.Request{Cost: limiter.Cost{Requests: 1}})
			if err == nil && d.Granted {
				e.ref[pool].grant(s.t, pool, s.now)
			}
		}
	}
}

// reconcile is Node.reconcile over the simulated engine.
func (e *simEngines) reconcile(s *simNet, n *simNode, now int64) {
	eng, q := n.eng, n.q
	q.Advance(now)
	lag := 2 * int64(q.Config().FenceAfter+q.Config().Margin)
	for _, pool := range e.pools {
		owns, until := q.Owns(pool), q.GrantUntil(pool)
		switch decide(eng.owned[pool], eng.lease[pool], owns, until, now) {
		case handOff:
			eng.owned[pool] = false
			p := eng.pools[pool]
			p.Drain(limiter.ErrNotOwner)
			if to, _, ok := q.Route(pool); ok && to != n.id && eng.lease[pool] > now {
				s.send(simMsg{from: n.id, to: to, state: p.Snapshot(now, pool, time.Time{}), final: true})
			}
		case takeOver, retake:
			p := eng.pools[pool]
			takeover := true
			if r, ok := eng.replicas[pool]; ok {
				delete(eng.replicas, pool)
				takeover = !(r.final && now-r.arrived <= lag)
				elapsed := time.Duration(now - r.arrived)
				if !takeover {
					elapsed = 0 // as Node.takeOver: a handoff is not refilled
				}
				if err := p.Restore(now, r.st, elapsed); err != nil {
					s.t.Fatal(err)
				}
			}
			if takeover {
				p.TakeOver(now)
			}
			e.ref[pool].start(s.now)
			eng.owned[pool], eng.lease[pool] = true, until
		case keepPool:
			if eng.owned[pool] && until > now {
				eng.lease[pool] = until
			}
		}
	}
}

func (e *simEngines) replicate(s *simNet, n *simNode, now int64) {
	for _, pool := range e.pools {
		if !n.eng.owned[pool] {
			continue
		}
		if heir, _, ok := n.q.Heir(pool); ok {
			s.send(simMsg{from: n.id, to: heir, state: n.eng.pools[pool].Snapshot(now, pool, time.Time{})})
		}
	}
}

func newEngineSim(t *testing.T, seed uint64, nodes int) *simNet {
	s := &simNet{engines: &simEngines{ref: map[string]*refBucket{}}}
	for i := range 4 {
		pool := fmt.Sprintf("pool-%d", i)
		s.engines.pools = append(s.engines.pools, pool)
		s.engines.ref[pool] = &refBucket{}
	}
	*s = *newSimNetWith(t, seed, nodes, simTimings, s.engines)
	return s
}

func TestEngineSimSteadyStateUsesTheLimit(t *testing.T) {
	s := newEngineSim(t, 7, 3)
	s.run(12 * time.Second)
	for pool, b := range s.engines.ref {
		// Served from about 0.6 s on, starting empty: 10/s for ~11.4 s.
		if b.granted < 100 {
			t.Errorf("pool %s: %d grants in 12 s at 10/s", pool, b.granted)
		}
	}
}

// TestEngineSimNeverOverTheLimitUnderChaos: partitions, loss, delay, pauses,
// kills, restarts and graceful leaves, with the reference bucket checked at every
// grant and "never two owners" at every step.
func TestEngineSimNeverOverTheLimitUnderChaos(t *testing.T) {
	forEachSeed(t, 20, 4, func(t *testing.T, seed uint64) {
		s := newEngineSim(t, 500+seed, 3+int(seed%3))
		s.run(2 * time.Second)
		s.runChaos(30)
	})
}

// leave is Node.Leave in the simulation: stop the engine, then announce.
func (s *simNet) leave(n *simNode) {
	now := n.clock(s.now)
	n.q.StopOwning(now)
	s.engines.reconcile(s, n, now)
	n.q.Drain(now)
}

// TestEngineSimHandoffOvertakenByAnotherOwner: the owner of a pool leaves
// gracefully and hands it to the next in rank, which it hears but the others do
// not. They move the pool at once (the leaver is draining) to the third in rank,
// which serves it. Then the second is heard again and the pool moves to it,
// about one fence later, well within the time a handoff counts as recent: it may
// continue the handoff, but not refill it for the time since, which the third
// spent.
func TestEngineSimHandoffOvertakenByAnotherOwner(t *testing.T) {
	s := newEngineSim(t, 11, 5)
	pool := s.engines.pools[0]
	ranked := Rank(pool, s.order)
	a, b, c := s.nodes[ranked[0]], s.nodes[ranked[1]], s.nodes[ranked[2]]
	s.run(2 * time.Second)
	for _, id := range ranked[2:] {
		s.cut[[2]string{b.id, id}], s.cut[[2]string{id, b.id}] = true, true
	}
	s.run(1500 * time.Millisecond)
	s.leave(a) // hands the pool to b, which a still hears
	s.run(200 * time.Millisecond)
	if !c.eng.owned[pool] {
		t.Fatalf("%s does not serve %s", c.id, pool)
	}
	// b is heard again by all but c.
	clear(s.cut)
	s.cut[[2]string{b.id, c.id}], s.cut[[2]string{c.id, b.id}] = true, true
	s.run(3 * time.Second)
	if !b.eng.owned[pool] {
		t.Fatalf("%s does not serve %s", b.id, pool)
	}
}
