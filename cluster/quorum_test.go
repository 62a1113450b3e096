package cluster

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	statev1 "github.com/quotad/quotad/proto/quotad/state/v1"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// The fence as a deterministic simulation: nodes running Quorum over a fake
// network with delay, loss, reordering, partitions, paused nodes and clocks that
// run at slightly different rates. After every step no pool may have two nodes
// that may grant for it.

type simMsg struct {
	at    int64 // real time of delivery
	to    string
	data  []byte             // a heartbeat, or
	state *statev1.PoolState // a replica or handoff (see engine_sim_test.go)
	from  string
	final bool // a handoff
}

type simNode struct {
	id     string
	q      *Quorum
	rate   float64 // this node's clock rate against real time
	offset int64   // its clock reading at real time 0
	paused bool    // neither sends nor receives (a stopped process, a long GC)
	dead   bool
	nextHB int64
	eng    *simEngine // with engines only
}

func (n *simNode) clock(real int64) int64 { return n.offset + int64(float64(real)*n.rate) }

type simNet struct {
	t        *testing.T
	rng      *rand.Rand
	now      int64 // real time
	nodes    map[string]*simNode
	order    []string
	inflight []simMsg
	cut      map[[2]string]bool // from,to: dropped
	loss     float64
	maxDelay int64
	pools    []string
	cfg      QuorumConfig
	inc      uint64
	// granted[pool] counts the steps some node could grant for the pool.
	granted map[string]int
	engines *simEngines // nil: the fence alone
}

func newSimNet(t *testing.T, seed uint64, n int, cfg QuorumConfig) *simNet {
	return newSimNetWith(t, seed, n, cfg, nil)
}

func newSimNetWith(t *testing.T, seed uint64, n int, cfg QuorumConfig, engines *simEngines) *simNet {
	s := &simNet{t: t, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), nodes: map[string]*simNode{},
		cut: map[[2]string]bool{}, maxDelay: int64(20 * time.Millisecond), cfg: cfg, granted: map[string]int{}, engines: engines}
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("10.0.0.%d:7946", i+1))
	}
	for i := range 16 {
		s.pools = append(s.pools, fmt.Sprintf("pool-%d", i))
	}
	for _, id := range ids {
		s.start(id, ids)
	}
	return s
}

func (s *simNet) start(id string, seeds []string) {
	s.inc++
	cfg := s.cfg
	cfg.Self, cfg.Incarnation, cfg.GRPC, cfg.Seeds = id, s.inc, "grpc-"+id, seeds
	n := &simNode{id: id, rate: 1 + (s.rng.Float64()*2-1)*0.01, offset: s.rng.Int64N(int64(time.Hour))}
	n.q = NewQuorum(cfg, n.clock(s.now))
	if s.engines != nil {
		n.eng = s.engines.newEngine(s, n)
	}
	if !slices.Contains(s.order, id) {
		s.order = append(s.order, id)
	}
	s.nodes[id] = n
}

const simStep = int64(5 * time.Millisecond)

// send puts m on the network, unless the link is cut or the message is lost.
func (s *simNet) send(m simMsg) {
	if s.cut[[2]string{m.from, m.to}] || s.rng.Float64() < s.loss {
		return
	}
	m.at = s.now + s.rng.Int64N(s.maxDelay+1)
	s.inflight = append(s.inflight, m)
}

// step advances real time by one step: heartbeats due are sent, messages due are
// delivered, then the safety check runs.
func (s *simNet) step() {
	s.now += simStep
	for _, id := range s.order {
		n := s.nodes[id]
		if n.dead || n.paused {
			continue
		}
		local := n.clock(s.now)
		if local >= n.nextHB {
			n.nextHB = local + int64(100*time.Millisecond)
			hb, to := n.q.Heartbeat(local)
			data, err := proto.Marshal(hb)
			if err != nil {
				s.t.Fatal(err)
			}
			for _, dst := range to {
				s.send(simMsg{from: id, to: dst, data: data})
			}
		}
	}
	var keep []simMsg
	for _, m := range s.inflight {
		dst := s.nodes[m.to]
		switch {
		case m.at > s.now:
			keep = append(keep, m)
		case dst == nil || dst.dead:
		case dst.paused:
			keep = append(keep, m) // delivered when it wakes: arbitrarily late
		case m.state != nil:
			s.engines.deliver(s, dst, m)
		default:
			hb := new(quotadv1.Heartbeat)
			if err := proto.Unmarshal(m.data, hb); err != nil {
				s.t.Fatal(err)
			}
			dst.q.Receive(dst.clock(s.now), hb)
		}
	}
	s.inflight = keep
	s.check()
	if s.engines != nil {
		s.engines.step(s)
	}
}

// check: for every pool, at most one live node may grant now.
func (s *simNet) check() {
	s.t.Helper()
	for _, pool := range s.pools {
		var granting []string
		for _, id := range s.order {
			n := s.nodes[id]
			if n.dead {
				continue
			}
			if n.clock(s.now) < n.q.GrantUntil(pool) {
				granting = append(granting, id)
			}
		}
		if len(granting) > 1 {
			s.t.Fatalf("t=%v: pool %s granted by %v at once", time.Duration(s.now), pool, granting)
		}
		if len(granting) == 1 {
			s.granted[pool]++
		}
	}
}

func (s *simNet) run(d time.Duration) {
	for end := s.now + int64(d); s.now < end; {
		s.step()
	}
}

// serving returns how many pools some node may grant for now.
func (s *simNet) serving() int {
	count := 0
	for _, pool := range s.pools {
		for _, id := range s.order {
			if n := s.nodes[id]; !n.dead && n.clock(s.now) < n.q.GrantUntil(pool) {
				count++
				break
			}
		}
	}
	return count
}

func (s *simNet) partition(groups ...[]string) {
	clear(s.cut)
	group := map[string]int{}
	for i, g := range groups {
		for _, id := range g {
			group[id] = i
		}
	}
	for _, a := range s.order {
		for _, b := range s.order {
			if group[a] != group[b] {
				s.cut[[2]string{a, b}] = true
			}
		}
	}
}

var simTimings = QuorumConfig{FenceAfter: 500 * time.Millisecond, SuspectAfter: 500 * time.Millisecond, Margin: 60 * time.Millisecond}

func TestQuorumFormsAndServesEveryPool(t *testing.T) {
	s := newSimNet(t, 1, 3, simTimings)
	s.run(2 * time.Second)
	if got := s.serving(); got != len(s.pools) {
		t.Fatalf("%d of %d pools served after 2s", got, len(s.pools))
	}
	// Ownership spreads over the members.
	owners := map[string]int{}
	for _, pool := range s.pools {
		id, _, _ := s.nodes[s.order[0]].q.Route(pool)
		owners[id]++
	}
	if len(owners) != 3 {
		t.Fatalf("owners %v", owners)
	}
}

func TestQuorumDeadNodeIsReplacedAfterTheFence(t *testing.T) {
	s := newSimNet(t, 2, 3, simTimings)
	s.run(2 * time.Second)
	s.nodes[s.order[0]].dead = true
	killed := s.now
	for s.serving() < len(s.pools) {
		s.step()
		if s.now-killed > int64(3*time.Second) {
			t.Fatalf("after 3s only %d of %d pools served", s.serving(), len(s.pools))
		}
	}
	t.Logf("all pools served again %v after the kill", time.Duration(s.now-killed))
}

func TestQuorumDrainingNodeHandsOverAtOnce(t *testing.T) {
	s := newSimNet(t, 3, 3, simTimings)
	s.run(2 * time.Second)
	leaving := s.nodes[s.order[0]]
	leaving.q.Drain(leaving.clock(s.now))
	drained := s.now
	for s.serving() < len(s.pools) {
		s.step()
	}
	if took := time.Duration(s.now - drained); took > 400*time.Millisecond {
		t.Fatalf("pools moved %v after a graceful leave; want well under the fence", took)
	}
	s.run(time.Second)
	if got := s.nodes[s.order[1]].q.Latest(); len(got) != 2 {
		t.Fatalf("latest view after leave: %v", got)
	}
	if s.serving() != len(s.pools) {
		t.Fatal("pools lost after the leave")
	}
}

func TestQuorumMinorityStopsMajorityServes(t *testing.T) {
	s := newSimNet(t, 4, 5, simTimings)
	s.run(2 * time.Second)
	minority, majority := s.order[:2], s.order[2:]
	s.partition(minority, majority)
	s.run(3 * time.Second)
	for _, pool := range s.pools {
		for _, id := range minority {
			if n := s.nodes[id]; n.clock(s.now) < n.q.GrantUntil(pool) {
				t.Fatalf("minority node %s grants for %s", id, pool)
			}
		}
	}
	if got := s.serving(); got != len(s.pools) {
		t.Fatalf("majority serves %d of %d pools", got, len(s.pools))
	}
	s.partition()
	s.run(3 * time.Second)
	if got := s.serving(); got != len(s.pools) {
		t.Fatalf("after healing %d of %d pools served", got, len(s.pools))
	}
}

func TestQuorumJoinMovesPools(t *testing.T) {
	s := newSimNet(t, 5, 3, simTimings)
	s.run(2 * time.Second)
	s.start("10.0.0.9:7946", []string{s.order[0]})
	s.run(4 * time.Second)
	if got := s.nodes[s.order[1]].q.Record(); len(got) != 4 {
		t.Fatalf("record after join: %v", got)
	}
	owned := 0
	for _, pool := range s.pools {
		if n := s.nodes["10.0.0.9:7946"]; n.clock(s.now) < n.q.GrantUntil(pool) {
			owned++
		}
	}
	if owned == 0 || s.serving() != len(s.pools) {
		t.Fatalf("new node grants for %d pools; %d of %d served", owned, s.serving(), len(s.pools))
	}
}

// TestQuorumNeverTwoOwnersUnderChaos drives random faults: partitions (also
// one-way), loss, long delays, pauses, kills and restarts. check fails the test
// at the first step where two nodes may grant for one pool.
func TestQuorumNeverTwoOwnersUnderChaos(t *testing.T) {
	forEachSeed(t, 30, 5, func(t *testing.T, seed uint64) {
		s := newSimNet(t, 100+seed, 3+int(seed%3), simTimings)
		s.run(2 * time.Second)
		s.runChaos(40)
		// Heal everything: the cluster serves every pool again.
		clear(s.cut)
		s.loss = 0
		s.maxDelay = int64(20 * time.Millisecond)
		for _, id := range s.order {
			if n := s.nodes[id]; n.dead || n.q.Draining() { // a drained node exits; it comes back as a new process
				s.start(id, s.order)
			} else {
				n.paused = false
			}
		}
		s.run(6 * time.Second)
		if got := s.serving(); got != len(s.pools) {
			t.Fatalf("after healing %d of %d pools served", got, len(s.pools))
		}
	})
}

// forEachSeed runs test in a subtest per seed 0, 1, ...: seeds of them, or
// short in -short and race runs.
func forEachSeed(t *testing.T, seeds, short int, test func(t *testing.T, seed uint64)) {
	if testing.Short() || raceEnabled {
		seeds = short
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { test(t, seed) })
	}
}

// runChaos applies rounds random faults (see chaos), running the simulation for
// 50 ms to 1.55 s after each.
func (s *simNet) runChaos(rounds int) {
	for range rounds {
		s.chaos()
		s.run(time.Duration(s.rng.Int64N(int64(1500*time.Millisecond))) + 50*time.Millisecond)
	}
}

func (s *simNet) chaos() {
	ids := s.order
	pick := func() string { return ids[s.rng.IntN(len(ids))] }
	switch s.rng.IntN(8) {
	case 0: // a random partition
		var a, b []string
		for _, id := range ids {
			if s.rng.IntN(2) == 0 {
				a = append(a, id)
			} else {
				b = append(b, id)
			}
		}
		s.partition(a, b)
	case 1: // a one-way cut
		from, to := pick(), pick()
		s.cut[[2]string{from, to}] = true
	case 2:
		clear(s.cut)
	case 3:
		s.loss = s.rng.Float64() * 0.5
		s.maxDelay = s.rng.Int64N(int64(400 * time.Millisecond))
	case 4: // pause or resume a node
		n := s.nodes[pick()]
		n.paused = !n.paused
	case 5: // kill or restart
		id := pick()
		if n := s.nodes[id]; n.dead {
			s.start(id, ids)
		} else {
			n.dead = true
		}
	case 6:
		s.loss, s.maxDelay = 0, int64(20*time.Millisecond)
	case 7: // a graceful leave, then a restart later (case 5)
		n := s.nodes[pick()]
		if !n.dead && !n.paused {
			now := n.clock(s.now)
			if s.engines != nil { // as Node.Leave: stop the engine before announcing
				n.q.StopOwning(now)
				s.engines.reconcile(s, n, now)
			}
			n.q.Drain(now)
		}
	}
}

// TestQuorumKeepsRemovalsOfMembersOnly: a heartbeat's removals name members of
// record (Remove takes out only those, and the record travels with them). Others
// are dropped: they would grow the removals, and every heartbeat, without bound.
func TestQuorumKeepsRemovalsOfMembersOnly(t *testing.T) {
	ids := []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}
	q := NewQuorum(QuorumConfig{Self: ids[0], Incarnation: 1, Seeds: ids, FenceAfter: time.Second}, 0)
	hb := &quotadv1.Heartbeat{From: ids[1], Incarnation: 2, SentAt: 5,
		Record:  []*quotadv1.RecordEntry{{Id: ids[2], Incarnation: 3}},
		Removed: []*quotadv1.RecordEntry{{Id: ids[2], Incarnation: 3}}}
	for i := range 1000 {
		hb.Removed = append(hb.Removed, &quotadv1.RecordEntry{Id: fmt.Sprintf("10.9.%d.%d:7946", i/256, i%256), Incarnation: 1})
	}
	if err := q.Receive(int64(time.Second), hb); err != nil {
		t.Fatal(err)
	}
	if got := q.Record(); !slices.Equal(got, ids[:2]) {
		t.Fatalf("record %v after the removal of %s", got, ids[2])
	}
	if out, _ := q.Heartbeat(int64(time.Second)); len(out.GetRemoved()) != 1 {
		t.Fatalf("the node's heartbeats carry %d removals, want 1", len(out.GetRemoved()))
	}
}
