package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/quotad/quotad/internal/clock"
	"github.com/quotad/quotad/limiter"
	statev1 "github.com/quotad/quotad/proto/quotad/state/v1"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// Node ties the cluster's parts to one quotad's engine: gossip carries the
// fence's heartbeats (quorum.go); every HeartbeatEvery the node reconciles its
// pools with what the fence allows, taking pools over (from a handoff, a replica,
// or what it holds, with the takeover charge) and handing off those it no longer
// owns; the Replicator sends owned pools' states to their heirs; the Forwarder
// routes calls by the node's latest view.

// NodeConfig configures a cluster node. Zero values take defaults.
type NodeConfig struct {
	// Gossip is the membership configuration (bind, advertise, join, key, timings).
	Gossip MembershipConfig
	// Fence timings: FenceAfter, SuspectAfter and Margin (QuorumConfig's).
	Fence QuorumConfig
	// HeartbeatEvery paces heartbeats and reconciliation. Default 100ms.
	HeartbeatEvery time.Duration
	// ReplicateEvery paces replication to heirs. Default 100ms.
	ReplicateEvery time.Duration
	// HandoffTimeout bounds one handoff call. Default 2s.
	HandoffTimeout time.Duration
	// Record, when not nil, delivers the membership of record (etcd registrations,
	// as gossip ids); SelfUntil then bounds this node's grants (its registration's
	// deadline).
	Record    <-chan []string
	SelfUntil func() time.Time
	Logger    *slog.Logger
}

func (c NodeConfig) withDefaults() NodeConfig {
	if c.HeartbeatEvery <= 0 {
		c.HeartbeatEvery = 100 * time.Millisecond
	}
	if c.ReplicateEvery <= 0 {
		c.ReplicateEvery = 100 * time.Millisecond
	}
	if c.HandoffTimeout <= 0 {
		c.HandoffTimeout = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Node is one quotad's membership in the cluster. Start it with StartNode; its
// methods are safe for concurrent use.
type Node struct {
	cfg   NodeConfig
	lim   *limiter.Limiter
	log   *slog.Logger
	ml    *Membership
	store *ReplicaStore
	repl  *Replicator
	fwd   *Forwarder

	mu    sync.Mutex // guards q and pools
	q     *Quorum
	pools map[string]*poolLease // pools this node owns

	// reconciling serializes reconcile (the run loop's and Leave's): each
	// decides on what it saw under mu, and acts after.
	reconciling sync.Mutex

	route atomic.Pointer[routeTable] // the latest view, for lock-free routing

	handoffs sync.WaitGroup
	conns    *PeerConns // to peers' gRPC: forwarding, replication, handoffs
	stop     context.CancelFunc
	done     chan struct{}
}

// poolLease is an owned pool's fence: the engine reads until at every grant.
type poolLease struct{ until atomic.Int64 }

// routeTable is an immutable copy of what routing needs.
type routeTable struct {
	self   string
	latest []string
	grpc   map[string]string
}

// StartNode joins the cluster and starts fencing, reconciling and replicating
// lim's pools. lim must be clustered (limiter.NewClustered) and share the node's
// clock. grpcAddr is where peers reach this node's gRPC server, on which the
// caller registers PeerServer and installs Interceptor.
func StartNode(lim *limiter.Limiter, grpcAddr string, cfg NodeConfig) (*Node, error) {
	cfg = cfg.withDefaults()
	n := &Node{cfg: cfg, lim: lim, log: cfg.Logger, store: NewReplicaStore(clock.Real()),
		pools: map[string]*poolLease{}, done: make(chan struct{})}
	gossip := cfg.Gossip
	gossip.GRPC, gossip.OnMessage, gossip.Logger = grpcAddr, n.receive, cfg.Logger
	ml, err := StartMembership(gossip)
	if err != nil {
		return nil, err
	}
	n.ml = ml
	fence := cfg.Fence
	fence.Self, fence.GRPC = ml.Addr(), grpcAddr
	fence.Incarnation = uint64(time.Now().UnixNano())
	fence.Seeds = resolveAll(cfg.Gossip.Join, n.log)
	fence.ExternalRecord = cfg.Record != nil
	q := NewQuorum(fence, lim.Now())
	n.mu.Lock()
	n.q = q // gossip may already deliver heartbeats (receive)
	n.mu.Unlock()
	n.publishRoute()
	n.conns = NewPeerConns(nil)
	n.repl = NewReplicator(lim, n.heir, ReplicatorOptions{Self: fence.Self, Interval: cfg.ReplicateEvery, Conns: n.conns, Logger: cfg.Logger})
	n.fwd = NewForwarder(n, ForwardOptions{Self: fence.Self, Conns: n.conns})
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	go n.run(ctx)
	go n.repl.Run(ctx)
	return n, nil
}

// resolveAll turns seed addresses into the ip:port form members are known by.
func resolveAll(addrs []string, log *slog.Logger) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		ua, err := net.ResolveUDPAddr("udp", a)
		if err != nil {
			log.Warn("join address not resolved; kept as given", "addr", a, "err", err)
			out = append(out, a)
			continue
		}
		out = append(out, ua.String())
	}
	return out
}

// ID is this node's member id (its gossip address).
func (n *Node) ID() string { return n.ml.Addr() }

// Interceptor forwards QuotaService calls for pools this node does not own.
func (n *Node) Interceptor() grpc.UnaryServerInterceptor { return n.fwd.Interceptor() }

// PeerServer serves replication and handoffs from members of record only.
func (n *Node) PeerServer() quotadv1.PeerServiceServer { return peerServer{n: n} }

// receive takes one gossip message: a peer's heartbeat. Anything else is dropped
// with a log line.
func (n *Node) receive(msg []byte) {
	hb := new(quotadv1.Heartbeat)
	if err := proto.Unmarshal(msg, hb); err != nil || hb.GetFrom() == "" {
		n.log.Warn("unreadable gossip message dropped", "bytes", len(msg), "err", err)
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.q == nil {
		return // gossip started before the fence: peers send another heartbeat soon
	}
	if err := n.q.Receive(n.lim.Now(), hb); err != nil {
		n.log.Warn("gossip heartbeat refused", "err", err)
	}
}

func (n *Node) run(ctx context.Context) {
	defer close(n.done)
	t := time.NewTicker(n.cfg.HeartbeatEvery)
	defer t.Stop()
	selfUntil := n.cfg.SelfUntil
	for {
		select {
		case <-ctx.Done():
			return
		case ids, ok := <-n.cfg.Record:
			if !ok {
				n.cfg.Record = nil
				continue
			}
			n.mu.Lock()
			n.q.SetRecord(ids)
			n.mu.Unlock()
		case <-t.C:
			if selfUntil != nil {
				until := selfUntil()
				n.mu.Lock()
				n.q.SetSelfUntil(n.lim.Now() + int64(time.Until(until)))
				n.mu.Unlock()
			}
			n.beat()
			n.reconcile()
		}
	}
}

// beat sends this node's heartbeat to every member of record.
func (n *Node) beat() {
	n.mu.Lock()
	hb, to := n.q.Heartbeat(n.lim.Now())
	n.mu.Unlock()
	data, err := proto.Marshal(hb)
	if err != nil {
		n.log.Error("encoding heartbeat", "err", err)
		return
	}
	for _, id := range to {
		if err := n.ml.Send(id, data); err != nil {
			n.log.Debug("heartbeat not sent", "to", id, "err", err)
		}
	}
}

// reconcile makes the engine follow the fence: pools this node no longer owns
// are handed off, pools it now owns are taken over, and the leases of the others
// are renewed.
func (n *Node) reconcile() {
	n.reconciling.Lock()
	defer n.reconciling.Unlock()
	now := n.lim.Now()
	n.mu.Lock()
	n.q.Advance(now)
	type change struct {
		pool  string
		until int64
		lapse bool // owned, but its lease ran out before this renewal
	}
	var lose, gain []change
	pools := n.lim.Pools()
	for _, pool := range pools {
		owns, until := n.q.Owns(pool), n.q.GrantUntil(pool)
		lease, owned := n.pools[pool]
		if owned && !n.lim.Owned(pool) {
			// Removed from the configuration and added back since the last
			// reconciliation: a new pool, which nobody owns yet.
			delete(n.pools, pool)
			owned = false
		}
		var leaseUntil int64
		if owned {
			leaseUntil = lease.until.Load()
		}
		switch decide(owned, leaseUntil, owns, until, now) {
		case handOff:
			lose = append(lose, change{pool: pool})
		case retake:
			gain = append(gain, change{pool: pool, until: until, lapse: true})
		case takeOver:
			gain = append(gain, change{pool: pool, until: until})
		case keepPool:
			if owned && until > now {
				lease.until.Store(until)
			}
		}
	}
	if len(n.pools) > 0 {
		present := make(map[string]bool, len(pools))
		for _, pool := range pools {
			present[pool] = true
		}
		for pool := range n.pools {
			if !present[pool] { // removed from the configuration
				delete(n.pools, pool)
			}
		}
	}
	n.mu.Unlock()
	n.publishRoute()

	for _, c := range lose {
		n.handOff(c.pool)
	}
	for _, c := range gain {
		n.takeOver(c.pool, c.until, c.lapse)
	}
}

// handOff stops serving pool and sends its final state to its new owner: final
// only if this node's lease held until it stopped, so that nobody else can have
// granted since it (re)took the pool.
func (n *Node) handOff(pool string) {
	n.mu.Lock()
	lease := n.pools[pool]
	delete(n.pools, pool)
	to, addr, ok := n.q.Route(pool)
	n.mu.Unlock()
	st, err := n.lim.Disown(pool, time.Now())
	if err != nil {
		n.log.Warn("disowning pool", "pool", pool, "err", err)
		return
	}
	if lease.until.Load() <= n.lim.Now() {
		// The lease lapsed before the engine stopped: another node may have
		// served the pool since, so this state is not final. The next owner
		// takes over from a replica instead, with the takeover charge.
		return
	}
	if !ok || to == n.ID() || addr == "" {
		return // nobody to hand to: the next owner takes over from a replica
	}
	n.handoffs.Add(1)
	go func() {
		defer n.handoffs.Done()
		if err := n.sendHandoff(addr, st); err != nil {
			n.log.Warn("handoff failed; the new owner takes over from its replica", "pool", pool, "to", to, "err", err)
			return
		}
		n.log.Debug("pool handed off", "pool", pool, "to", to)
	}()
}

func (n *Node) sendHandoff(addr string, st *statev1.PoolState) error {
	conn, err := n.conns.Get(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.HandoffTimeout)
	defer cancel()
	_, err = quotadv1.NewPeerServiceClient(conn).Handoff(ctx, &quotadv1.HandoffRequest{From: n.ID(), Pools: []*statev1.PoolState{st}})
	return err
}

// takeOver starts serving pool. A recent handoff is continued without the
// takeover charge; anything else (a replica, or the state this node holds) is
// charged what an unseen owner could have granted since. "Recent" is two fence
// switches: a handoff older than that may predate another owner's grants (the
// pool moved again meanwhile). Even a recent one is not refilled for its age:
// when views disagreed at the leave, another node may have served the pool
// between the handoff and now (it took the pool over with the charge, so it
// granted at most that refill), and a handoff's age, stamped on arrival, says
// nothing of how long it was on its way.
func (n *Node) takeOver(pool string, until int64, lapsed bool) {
	lease := &poolLease{}
	lease.until.Store(until)
	opts := limiter.OwnOptions{Lease: &lease.until, TakeOver: true}
	how := "takeover from own state"
	if lapsed {
		how = "takeover after the lease lapsed"
	}
	if rep, age, ok := n.store.Take(pool); ok {
		opts.State, opts.Elapsed = rep.State, age
		how = "takeover from replica"
		if fc := n.q.Config(); rep.Handoff && age <= 2*(fc.FenceAfter+fc.Margin) {
			opts.TakeOver, opts.Elapsed, how = false, 0, "handoff"
		}
	}
	if err := n.lim.Own(pool, opts); err != nil {
		n.log.Warn("taking pool over", "pool", pool, "err", err)
		return
	}
	n.mu.Lock()
	n.pools[pool] = lease
	n.mu.Unlock()
	n.repl.Kick() // a big change: its heir gets the new state at once
	n.log.Info("pool owned", "pool", pool, "how", how)
}

// heir is the Replicator's HeirFunc.
func (n *Node) heir(pool string) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, addr, ok := n.q.Heir(pool)
	return addr, ok && addr != ""
}

func (n *Node) publishRoute() {
	n.mu.Lock()
	defer n.mu.Unlock()
	rt := &routeTable{self: n.q.Config().Self, latest: n.q.Latest(), grpc: map[string]string{}}
	for _, id := range rt.latest {
		if addr, ok := n.q.PeerGRPC(id); ok {
			rt.grpc[id] = addr
		}
	}
	if old := n.route.Swap(rt); old != nil && !slices.Equal(old.latest, rt.latest) && n.repl != nil {
		n.repl.Reset() // pools may have new heirs: send them every state
		live := map[string]bool{}
		for _, addr := range rt.grpc {
			live[addr] = true
		}
		n.conns.Keep(live) // departed peers are not redialled for ever
	}
}

// Owner implements Router: the pool's owner in this node's latest view.
func (n *Node) Owner(pool string) (addr string, self bool, err error) {
	rt := n.route.Load()
	id := Owner(pool, rt.latest)
	if id == "" {
		return "", false, ErrNoOwner
	}
	if id == rt.self {
		return "", true, nil
	}
	addr, ok := rt.grpc[id]
	if !ok {
		return "", false, ErrNoOwner
	}
	return addr, false, nil
}

// Status is a summary of the node's view, for logs and tests.
type Status struct {
	ID        string
	Record    []string
	Latest    []string
	Certified []string
	Owned     int
}

// Status returns the node's current view.
func (n *Node) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	return Status{ID: n.q.Config().Self, Record: n.q.Record(), Latest: n.q.Latest(), Certified: n.q.Certified(), Owned: len(n.pools)}
}

// Remove takes a member out of the record (`quotad cluster remove`).
func (n *Node) Remove(id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !slices.Contains(n.q.Record(), id) {
		return fmt.Errorf("%q is not a member of record (members: %v)", id, n.q.Record())
	}
	if id == n.q.Config().Self {
		return errors.New("a node cannot remove itself: stop it with SIGTERM")
	}
	n.q.Remove(id)
	return nil
}

// Leave hands every pool to its next owner and leaves: it announces draining
// (peers move its pools at once), hands off the pools with their state, fails
// forwarded waiters with NOT_OWNER so their forwarding nodes re-send them, waits
// for the handoffs within ctx, and leaves gossip.
func (n *Node) Leave(ctx context.Context) error {
	n.mu.Lock()
	n.q.StopOwning(n.lim.Now())
	n.mu.Unlock()
	n.reconcile() // disowns every pool and sends the handoffs
	// Only now, with the engine granting nothing, may peers take the pools at once.
	n.mu.Lock()
	n.q.Drain(n.lim.Now())
	n.mu.Unlock()
	n.publishRoute()
	n.beat()
	waited := make(chan struct{})
	go func() { n.handoffs.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		n.log.Warn("leaving before every handoff finished", "err", ctx.Err())
	}
	n.beat()
	return n.Close(true)
}

// Close stops the node; with leave it tells gossip peers first.
func (n *Node) Close(leave bool) error {
	n.stop()
	<-n.done
	n.conns.Close()
	if leave {
		return n.ml.Leave(time.Second)
	}
	return n.ml.Shutdown()
}

// peerServer serves PeerService calls from members of record and drops others
// with a log line.
type peerServer struct {
	quotadv1.UnimplementedPeerServiceServer
	n *Node
}

// check admits calls from members of record (a member that left gracefully
// stays one, so its handoffs are admitted).
func (p peerServer) check(from string) error {
	p.n.mu.Lock()
	member := slices.Contains(p.n.q.Record(), from)
	p.n.mu.Unlock()
	if !member {
		p.n.log.Warn("peer call from a non-member dropped", "from", clip(from))
		return status.Errorf(codes.PermissionDenied, "%q is not a member of this cluster", clip(from))
	}
	return nil
}

// known keeps the states of pools this node has, logging the others.
func (p peerServer) known(from string, states []*statev1.PoolState) []*statev1.PoolState {
	pools := map[string]bool{}
	for _, name := range p.n.lim.Pools() {
		pools[name] = true
	}
	kept := states[:0:0]
	for _, st := range states {
		if pools[st.GetPool()] {
			kept = append(kept, st)
		} else {
			p.n.log.Warn("peer state of an unknown pool dropped", "from", clip(from), "pool", clip(st.GetPool()))
		}
	}
	return kept
}

// clip bounds a peer-supplied string in logs and errors.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func (p peerServer) Replicate(ctx context.Context, req *quotadv1.ReplicateRequest) (*quotadv1.ReplicateResponse, error) {
	if err := p.check(req.GetFrom()); err != nil {
		return nil, err
	}
	return p.n.store.Replicate(ctx, &quotadv1.ReplicateRequest{From: req.GetFrom(), Pools: p.known(req.GetFrom(), req.GetPools())})
}

func (p peerServer) GetCluster(context.Context, *quotadv1.GetClusterRequest) (*quotadv1.GetClusterResponse, error) {
	st := p.n.Status()
	return &quotadv1.GetClusterResponse{Id: st.ID, Record: st.Record, Latest: st.Latest, Certified: st.Certified, OwnedPools: uint32(st.Owned)}, nil
}

func (p peerServer) RemoveMember(_ context.Context, req *quotadv1.RemoveMemberRequest) (*quotadv1.RemoveMemberResponse, error) {
	if err := p.n.Remove(req.GetId()); err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	p.n.log.Info("member removed from the record", "member", req.GetId())
	return &quotadv1.RemoveMemberResponse{}, nil
}

func (p peerServer) Handoff(ctx context.Context, req *quotadv1.HandoffRequest) (*quotadv1.HandoffResponse, error) {
	if err := p.check(req.GetFrom()); err != nil {
		return nil, err
	}
	return p.n.store.Handoff(ctx, &quotadv1.HandoffRequest{From: req.GetFrom(), Pools: p.known(req.GetFrom(), req.GetPools())})
}
