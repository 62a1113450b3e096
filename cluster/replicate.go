package cluster

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/quotad/quotad/internal/clock"
	"github.com/quotad/quotad/limiter"
	statev1 "github.com/quotad/quotad/proto/quotad/state/v1"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// Replication: an owner sends the state of the pools that changed to each pool's
// heir (the second in rendezvous rank), about every Interval, batched per heir and
// bounded in size. The heir keeps the newest state of each pool, stamped with its
// own monotonic clock on arrival, so that a takeover knows how old its replica is
// without trusting the sender's clock.

// ReplicatorOptions configure a Replicator.
type ReplicatorOptions struct {
	Self string
	// Interval between rounds; zero means 100ms.
	Interval time.Duration
	// MaxBatchBytes bounds one Replicate call; zero means 1 MiB.
	MaxBatchBytes int
	// Conns are the peer connections; nil: the Replicator pools its own.
	Conns  *PeerConns
	Logger *slog.Logger
	// Clock paces rounds' snapshots of big states; nil means the real clock.
	Clock clock.Clock
}

// HeirFunc returns the gRPC address of the node that should hold pool's replica,
// and false when there is none (this node does not own the pool, or is alone).
type HeirFunc func(pool string) (addr string, ok bool)

// Replicator sends the state of changed pools to their heirs. Run it in one
// goroutine; it owns its bookkeeping.
type Replicator struct {
	lim  *limiter.Limiter
	heir HeirFunc
	opts ReplicatorOptions

	versions map[string]uint64    // pool -> the version last snapshotted and sent
	nextAt   map[string]time.Time // pool -> not snapshotted again before (big states)
	failing  map[string]bool      // heirs whose last send failed (logged once)
	reset    chan struct{}
	kick     chan struct{}
	conns    *PeerConns
	ownConns bool // conns were made here, so Run closes them
}

// NewReplicator returns a Replicator of lim's pools.
func NewReplicator(lim *limiter.Limiter, heir HeirFunc, opts ReplicatorOptions) *Replicator {
	if opts.Interval <= 0 {
		opts.Interval = 100 * time.Millisecond
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = 1 << 20
	}
	ownConns := opts.Conns == nil
	if ownConns {
		opts.Conns = NewPeerConns(nil)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	return &Replicator{lim: lim, heir: heir, opts: opts, versions: map[string]uint64{}, nextAt: map[string]time.Time{},
		failing: map[string]bool{}, reset: make(chan struct{}, 1), kick: make(chan struct{}, 1), conns: opts.Conns, ownConns: ownConns}
}

// Reset makes the next round send every pool, changed or not: call it when the
// membership changes, since pools may have new heirs. Safe for concurrent use.
func (r *Replicator) Reset() {
	select {
	case r.reset <- struct{}{}:
	default:
	}
}

// Kick asks for a round now, not at the next tick: call it after a big change
// (a takeover). Safe for concurrent use.
func (r *Replicator) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run replicates every Interval, and when kicked, until ctx ends.
func (r *Replicator) Run(ctx context.Context) {
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	defer r.close()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
		}
		r.Round(ctx)
	}
}

// Round sends one round of changed states. The states a heir did not take are
// sent again next round.
func (r *Replicator) Round(ctx context.Context) {
	select {
	case <-r.reset:
		clear(r.versions)
	default:
	}
	now := r.opts.Clock.Now()
	due := func(pool string) bool { return !now.Before(r.nextAt[pool]) }
	byHeir := map[string][]*statev1.PoolState{}
	for _, st := range r.lim.SnapshotChanged(r.versions, now, due) {
		r.nextAt[st.GetPool()] = now.Add(r.pace(proto.Size(st)))
		if addr, ok := r.heir(st.GetPool()); ok {
			byHeir[addr] = append(byHeir[addr], st)
		}
	}
	for pool := range r.nextAt {
		if _, ok := r.versions[pool]; !ok {
			delete(r.nextAt, pool) // gone from the Limiter
		}
	}
	for addr, batch := range byHeir {
		err := r.send(ctx, addr, batch)
		switch {
		case err != nil && !r.failing[addr]:
			r.opts.Logger.Warn("replication to heir failing; retrying every round", "heir", addr, "pools", len(batch), "err", err)
		case err != nil:
			r.opts.Logger.Debug("replication failed; retrying next round", "heir", addr, "err", err)
		case r.failing[addr]:
			r.opts.Logger.Info("replication to heir works again", "heir", addr)
		}
		r.failing[addr] = err != nil
		if err != nil {
			for _, st := range batch {
				delete(r.versions, st.GetPool())
			}
		}
	}
}

// paceUnit: a pool's state is snapshotted at most once per Interval for each
// paceUnit bytes it takes, so that a pool holding thousands of tombstones does
// not spend its lock and the CPU on a megabyte every 100 ms. A replica that lags
// more costs nothing in safety: a takeover charges what the old owner could have
// granted since it, whatever its age.
const paceUnit = 64 << 10

func (r *Replicator) pace(size int) time.Duration {
	return r.opts.Interval * time.Duration(1+size/paceUnit)
}

// send delivers states to addr in calls of at most MaxBatchBytes.
func (r *Replicator) send(ctx context.Context, addr string, states []*statev1.PoolState) error {
	conn, err := r.conns.Get(addr)
	if err != nil {
		return err
	}
	api := quotadv1.NewPeerServiceClient(conn)
	for len(states) > 0 {
		req := &quotadv1.ReplicateRequest{From: r.opts.Self}
		size := 0
		for len(states) > 0 && (len(req.Pools) == 0 || size+proto.Size(states[0]) <= r.opts.MaxBatchBytes) {
			size += proto.Size(states[0])
			req.Pools, states = append(req.Pools, states[0]), states[1:]
		}
		callCtx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := api.Replicate(callCtx, req)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *Replicator) close() {
	if r.ownConns {
		r.conns.Close()
	}
}

// Replica is a pool's state as its heir received it.
type Replica struct {
	State   *statev1.PoolState
	From    string
	Arrived time.Time // by the heir's clock
	// Handoff: the sender had stopped granting for the pool when it took State
	// (a graceful move), so State is final, not a replica that may lag.
	Handoff bool
}

// ReplicaStore keeps the newest replica of each pool and serves PeerService. It is
// safe for concurrent use.
type ReplicaStore struct {
	quotadv1.UnimplementedPeerServiceServer
	clock clock.Clock

	mu       sync.Mutex // guards replicas
	replicas map[string]Replica
}

// NewReplicaStore returns an empty store stamping arrivals with c.
func NewReplicaStore(c clock.Clock) *ReplicaStore {
	return &ReplicaStore{clock: c, replicas: map[string]Replica{}}
}

// Replicate implements PeerService: it keeps each state unless it holds a newer one
// from the same sender, or a pending handoff. States of a format this node cannot
// read are refused.
func (s *ReplicaStore) Replicate(ctx context.Context, req *quotadv1.ReplicateRequest) (*quotadv1.ReplicateResponse, error) {
	return &quotadv1.ReplicateResponse{Stored: s.store(req.GetFrom(), req.GetPools(), false)}, nil
}

// Handoff implements PeerService: it keeps each final state, replacing any replica
// of the pool, to be continued without a takeover charge.
func (s *ReplicaStore) Handoff(ctx context.Context, req *quotadv1.HandoffRequest) (*quotadv1.HandoffResponse, error) {
	return &quotadv1.HandoffResponse{Stored: s.store(req.GetFrom(), req.GetPools(), true)}, nil
}

// store keeps the states it should and returns how many.
func (s *ReplicaStore) store(from string, states []*statev1.PoolState, handoff bool) uint32 {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	stored := uint32(0)
	for _, st := range states {
		if st.GetFormatVersion() > limiter.StateFormat || st.GetPool() == "" {
			continue
		}
		old, ok := s.replicas[st.GetPool()]
		if !handoff && ok && (old.Handoff || old.From == from && old.State.GetVersion() >= st.GetVersion()) {
			continue // a pending handoff is newer than any replica
		}
		s.replicas[st.GetPool()] = Replica{State: st, From: from, Arrived: now, Handoff: handoff}
		stored++
	}
	return stored
}

// Take returns pool's replica and how old it is, and forgets it (a takeover uses
// it once).
func (s *ReplicaStore) Take(pool string) (Replica, time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.replicas[pool]
	if !ok {
		return r, 0, false
	}
	delete(s.replicas, pool)
	return r, s.clock.Now().Sub(r.Arrived), true
}
