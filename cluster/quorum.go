package cluster

import (
	"fmt"
	"math"
	"net"
	"slices"
	"sort"
	"time"

	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// The fence: at most one node grants for a pool at any moment, whatever the network
// does, without a coordinator.
//
// Every node sends every member of record a heartbeat several times per FenceAfter.
// A heartbeat carries the sender's two views (the members it hears and vouches for):
// certified, which changes only slowly, and latest. It also echoes the newest
// heartbeat the sender received from each peer. An echo is a certificate: "at your
// sent_at, I vouched that pool K is yours if K's owner is you in both my certified
// and latest views". The receiver holds it until its own sent_at + FenceAfter, by
// its own clock, so delay and reordering of the echo only shorten it.
//
// A node grants for pool K while it vouches for itself (K is its own in both its
// views) and holds unexpired certificates for K from enough peers that, with
// itself, they are a strict majority of the members of record.
//
// Safety: two nodes granting K at the same moment would need two majorities, so
// one node M would have vouched, with certificates valid at that moment, for two
// different owners of K. M's certificates name the same owner of K as long as its
// certified view is unchanged, except those for pools whose owner differs between
// certified and latest, for which M vouches for nobody. M adopts its latest view
// as certified only FenceAfter+Margin after that view last changed (and after it
// started): every certificate issued under the old pair has expired by then. A
// restarted node waits the same before vouching, for its previous incarnation's
// certificates. Margin covers clock-rate drift between nodes.
//
// Exception: a member that announced it is draining has stopped granting for good,
// so dropping only draining members from the certified view needs no wait: the
// pools that move were theirs, and they will not use their certificates.
//
// Members of record: with etcd, the registered nodes (SetRecord). Without, the
// configured seeds plus every node heard, minus those removed (`quotad cluster
// remove`); records and removals spread with heartbeats. Changing the record by
// one member at a time keeps every two majorities intersecting. A member that
// left gracefully stays of record (see Drain) but out of every view.
//
// Quorum is a plain data structure: no I/O, no clock (every method takes now, in
// nanoseconds of the node's monotonic clock), not safe for concurrent use.

// QuorumConfig configures a node's side of the fence.
type QuorumConfig struct {
	// Self is this member's id: its gossip address (host:port).
	Self string
	// Incarnation tells this process from earlier ones of the same member: larger
	// than theirs (start time, unix ns).
	Incarnation uint64
	// GRPC is this node's gRPC address, sent to peers for routing.
	GRPC string
	// Seeds are the configured members of record (static mode).
	Seeds []string
	// FenceAfter is how long a certificate lasts: a node that has heard no
	// majority for this long stops granting.
	FenceAfter time.Duration
	// SuspectAfter: a member not heard from for this long leaves the latest view.
	SuspectAfter time.Duration
	// Margin is added to every wait that protects another node's certificate.
	Margin time.Duration
	// ExternalRecord: the members of record come from SetRecord (etcd), not from
	// seeds and heartbeats.
	ExternalRecord bool
}

// DefaultFenceTimings detect a dead node in about a second and move its pools
// within about two and a half.
var DefaultFenceTimings = QuorumConfig{FenceAfter: time.Second, SuspectAfter: time.Second, Margin: 150 * time.Millisecond}

func (c QuorumConfig) withDefaults() QuorumConfig {
	if c.FenceAfter <= 0 {
		c.FenceAfter = DefaultFenceTimings.FenceAfter
	}
	if c.SuspectAfter <= 0 {
		c.SuspectAfter = c.FenceAfter
	}
	if c.Margin <= 0 {
		c.Margin = c.FenceAfter/10 + 50*time.Millisecond
	}
	return c
}

// Quorum is one node's state in the fencing protocol.
type Quorum struct {
	cfg   QuorumConfig
	start int64

	record  map[string]uint64 // id -> newest incarnation known (0: not heard yet)
	removed map[string]uint64 // id -> incarnation removed (and every earlier one)
	peers   map[string]*peerState

	leaving     bool     // owns nothing any more (StopOwning, Drain)
	draining    bool     // and said so (Drain)
	certified   []string // sorted; nil before the first switch
	latest      []string // sorted
	latestSince int64    // when latest last changed
	selfUntil   int64    // external fence on this node (etcd registration deadline)
}

type peerState struct {
	inc      uint64
	grpc     string
	draining bool
	heardAt  int64 // by this node's clock
	sentAt   int64 // the peer's sent_at of its newest heartbeat: what we echo
	// The peer's newest certificate to this node.
	certSentAt int64 // this node's sent_at that the peer echoed
	certView   []string
	certLatest []string
}

// NewQuorum starts a node's side of the fence at now. It vouches for nobody, itself
// included, before FenceAfter+Margin (an earlier incarnation's certificates).
func NewQuorum(cfg QuorumConfig, now int64) *Quorum {
	cfg = cfg.withDefaults()
	q := &Quorum{cfg: cfg, start: now, record: map[string]uint64{cfg.Self: cfg.Incarnation},
		removed: map[string]uint64{}, peers: map[string]*peerState{}, latestSince: now, selfUntil: math.MaxInt64}
	for _, s := range cfg.Seeds {
		if _, ok := q.record[s]; !ok {
			q.record[s] = 0
		}
	}
	q.latest = q.computeLatest(now)
	return q
}

// Config returns the configuration in force, defaults filled in.
func (q *Quorum) Config() QuorumConfig { return q.cfg }

func (q *Quorum) lag() int64 { return int64(q.cfg.FenceAfter + q.cfg.Margin) }

// isMember reports whether id is a member of record.
func (q *Quorum) isMember(id string) bool {
	inc, ok := q.record[id]
	if !ok {
		return false
	}
	gone, removed := q.removed[id]
	return !removed || inc > gone
}

// Record returns the members of record, sorted.
func (q *Quorum) Record() []string {
	var out []string
	for id := range q.record {
		if q.isMember(id) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func (q *Quorum) majority() int { return len(q.Record())/2 + 1 }

// SetRecord replaces the members of record (etcd mode). Members are ids.
func (q *Quorum) SetRecord(ids []string) {
	rec := map[string]uint64{}
	for _, id := range ids {
		rec[id] = q.record[id]
	}
	if _, ok := rec[q.cfg.Self]; ok {
		rec[q.cfg.Self] = q.cfg.Incarnation
	}
	q.record = rec
}

// SetSelfUntil bounds this node's grants by an external fence (its etcd
// registration's deadline, in this node's clock).
func (q *Quorum) SetSelfUntil(until int64) { q.selfUntil = until }

// Remove takes id out of the members of record (`quotad cluster remove`); the
// removal spreads with heartbeats. A later incarnation of id joins again.
func (q *Quorum) Remove(id string) {
	q.removed[id] = max(q.removed[id], q.record[id])
}

// StopOwning is a graceful leave's first step: the node owns no pool from now
// on, and its latest view leaves itself out (so its pools route to their next
// owners), but it does not announce it yet. The caller stops its engine granting
// (hands the pools off), then calls Drain.
func (q *Quorum) StopOwning(now int64) {
	q.leaving = true
	q.Advance(now)
}

// Drain announces that this node has stopped granting, for good: peers then move
// its pools without waiting. Call it only once the engine grants nothing (see
// StopOwning).
//
// The node stays a member of record: if a graceful leave shrank the record, two
// nodes leaving while the third is cut off would leave that one a cluster of one,
// granting alone, while the two, restarted from their --join lists, form a
// majority of three without it. Only `quotad cluster remove` shrinks the record.
func (q *Quorum) Drain(now int64) {
	q.leaving, q.draining = true, true
	q.Advance(now)
}

// Draining reports whether Drain was called.
func (q *Quorum) Draining() bool { return q.draining }

// computeLatest is the members this node hears: itself unless leaving, and every
// member of record heard within SuspectAfter that is not draining.
func (q *Quorum) computeLatest(now int64) []string {
	var view []string
	if !q.leaving && q.isMember(q.cfg.Self) {
		view = append(view, q.cfg.Self)
	}
	for id, p := range q.peers {
		if !p.draining && q.isMember(id) && now-p.heardAt <= int64(q.cfg.SuspectAfter) {
			view = append(view, id)
		}
	}
	sort.Strings(view)
	return view
}

// Advance lets time pass: the latest view follows what the node hears, and the
// certified view takes it once that is safe.
func (q *Quorum) Advance(now int64) {
	if lv := q.computeLatest(now); !slices.Equal(lv, q.latest) {
		q.latest, q.latestSince = lv, now
	}
	if q.certified != nil && slices.Equal(q.certified, q.latest) {
		return
	}
	if q.onlyDrainedLeft() || now >= max(q.start, q.latestSince)+q.lag() {
		q.certified = slices.Clone(q.latest)
		if q.certified == nil {
			q.certified = []string{}
		}
	}
}

// onlyDrainedLeft: the latest view is the certified one less members that are
// draining (or this node, draining).
func (q *Quorum) onlyDrainedLeft() bool {
	if q.certified == nil || len(q.latest) >= len(q.certified) {
		return false
	}
	for _, id := range q.certified {
		if slices.Contains(q.latest, id) {
			continue
		}
		if id == q.cfg.Self && q.leaving {
			continue
		}
		if p := q.peers[id]; p == nil || !p.draining {
			return false
		}
	}
	for _, id := range q.latest {
		if !slices.Contains(q.certified, id) {
			return false
		}
	}
	return true
}

// Heartbeat returns the heartbeat to send at now, and the members to send it to.
func (q *Quorum) Heartbeat(now int64) (*quotadv1.Heartbeat, []string) {
	q.Advance(now)
	hb := &quotadv1.Heartbeat{From: q.cfg.Self, Incarnation: q.cfg.Incarnation, SentAt: now,
		Grpc: q.cfg.GRPC, Draining: q.draining}
	if q.certified != nil {
		hb.View, hb.Latest = q.certified, q.latest
		for id, p := range q.peers {
			if p.sentAt > 0 {
				hb.Echoes = append(hb.Echoes, &quotadv1.Echo{To: id, Incarnation: p.inc, SentAt: p.sentAt})
			}
		}
		sort.Slice(hb.Echoes, func(i, j int) bool { return hb.Echoes[i].To < hb.Echoes[j].To })
	}
	for id, inc := range q.record {
		hb.Record = append(hb.Record, &quotadv1.RecordEntry{Id: id, Incarnation: inc})
	}
	for id, inc := range q.removed {
		hb.Removed = append(hb.Removed, &quotadv1.RecordEntry{Id: id, Incarnation: inc})
	}
	var to []string
	for id := range q.record {
		if id != q.cfg.Self && q.isMember(id) {
			to = append(to, id)
		}
	}
	for id, p := range q.peers {
		if !q.isMember(id) && now-p.heardAt <= int64(q.cfg.SuspectAfter) {
			to = append(to, id) // not (or no longer) of record: it learns why from ours
		}
	}
	sort.Strings(to)
	return hb, to
}

// MaxMembers bounds the members of record a node accepts, so that a bogus
// heartbeat cannot inflate the record (and the majority) without end.
const MaxMembers = 64

// maxKnownIDs bounds the ids a node remembers, removed members included (their
// removal must outlive every heartbeat that still names them).
const maxKnownIDs = 16 * MaxMembers

// Receive takes a peer's heartbeat, received at now. A heartbeat that names a
// member that is not a host:port, or would grow the record past MaxMembers, is
// refused whole, with an error saying why.
func (q *Quorum) Receive(now int64, hb *quotadv1.Heartbeat) error {
	from := hb.GetFrom()
	if from == q.cfg.Self {
		return nil
	}
	if err := q.check(hb); err != nil {
		return err
	}
	if !q.cfg.ExternalRecord {
		q.merge(from, hb)
	}
	p := q.peers[from]
	if p == nil {
		if q.cfg.ExternalRecord && !q.isMember(from) {
			return nil // not registered (yet): heard once it is
		}
		p = &peerState{}
		q.peers[from] = p
	}
	switch {
	case hb.GetIncarnation() > p.inc: // a restart: its old echoes mean nothing now
		p.inc, p.sentAt = hb.GetIncarnation(), 0
	case hb.GetIncarnation() < p.inc:
		return nil // from a process that has since restarted
	}
	if hb.GetSentAt() > p.sentAt {
		p.sentAt, p.heardAt = hb.GetSentAt(), now
		p.grpc, p.draining = hb.GetGrpc(), hb.GetDraining()
	}
	for _, e := range hb.GetEchoes() {
		if e.GetTo() == q.cfg.Self && e.GetIncarnation() == q.cfg.Incarnation && e.GetSentAt() > p.certSentAt && e.GetSentAt() <= now {
			p.certSentAt = e.GetSentAt()
			p.certView, p.certLatest = hb.GetView(), hb.GetLatest()
		}
	}
	q.Advance(now)
	return nil
}

// check refuses a heartbeat with a malformed member id, or one whose record
// would take this node's past MaxMembers.
func (q *Quorum) check(hb *quotadv1.Heartbeat) error {
	ids := []string{hb.GetFrom()}
	if !q.cfg.ExternalRecord {
		for _, e := range hb.GetRecord() {
			ids = append(ids, e.GetId())
		}
	}
	added := 0
	for _, id := range ids {
		if _, port, err := net.SplitHostPort(id); err != nil || port == "" {
			return fmt.Errorf("heartbeat from %q: member id %q is not host:port", hb.GetFrom(), id)
		}
		if _, ok := q.record[id]; !ok {
			added++
		}
	}
	if q.cfg.ExternalRecord {
		return nil
	}
	if n := len(q.Record()) + added; n > MaxMembers {
		return fmt.Errorf("heartbeat from %q: record would grow to %d members, more than %d", hb.GetFrom(), n, MaxMembers)
	}
	if n := len(q.record) + added; n > maxKnownIDs {
		return fmt.Errorf("heartbeat from %q: %d member ids known, removed ones included, more than %d", hb.GetFrom(), n, maxKnownIDs)
	}
	return nil
}

// merge folds a heartbeat's record and removals into this node's (static mode).
func (q *Quorum) merge(from string, hb *quotadv1.Heartbeat) {
	q.record[from] = max(q.record[from], hb.GetIncarnation())
	for _, e := range hb.GetRecord() {
		if e.GetId() != "" {
			q.record[e.GetId()] = max(q.record[e.GetId()], e.GetIncarnation())
		}
	}
	for _, e := range hb.GetRemoved() {
		// Only members of record are removed, and the record travels with the
		// removals: others would grow the removals (and heartbeats) without bound.
		if _, ok := q.record[e.GetId()]; ok {
			q.removed[e.GetId()] = max(q.removed[e.GetId()], e.GetIncarnation())
		}
	}
	q.record[q.cfg.Self] = q.cfg.Incarnation
}

// Owns reports whether this node vouches for itself as pool's owner: the owner in
// both its views. Only then may it hold the pool's state as the one that counts.
func (q *Quorum) Owns(pool string) bool {
	return !q.leaving && q.certified != nil &&
		Owner(pool, q.certified) == q.cfg.Self && Owner(pool, q.latest) == q.cfg.Self
}

// GrantUntil returns until when (this node's clock) it may grant for pool: the
// instant it would stop holding a majority's certificates, or 0 if it holds none
// now. It changes as heartbeats arrive.
func (q *Quorum) GrantUntil(pool string) int64 {
	if !q.Owns(pool) {
		return 0
	}
	need := q.majority() - 1
	if need <= 0 {
		return q.selfUntil
	}
	var until []int64
	for id, p := range q.peers {
		if p.certSentAt > 0 && q.isMember(id) &&
			Owner(pool, p.certView) == q.cfg.Self && Owner(pool, p.certLatest) == q.cfg.Self {
			until = append(until, p.certSentAt+int64(q.cfg.FenceAfter))
		}
	}
	if len(until) < need {
		return 0
	}
	sort.Slice(until, func(i, j int) bool { return until[i] > until[j] })
	return min(until[need-1], q.selfUntil)
}

// Route returns pool's owner in this node's latest view, and the owner's gRPC
// address; ok is false while the view is empty.
func (q *Quorum) Route(pool string) (id, grpc string, ok bool) {
	id = Owner(pool, q.latest)
	switch {
	case id == "":
		return "", "", false
	case id == q.cfg.Self:
		return id, q.cfg.GRPC, true
	}
	return id, q.peers[id].grpc, true
}

// Heir returns the member after pool's owner in rank in the latest view (who
// should hold its replica), and its gRPC address.
func (q *Quorum) Heir(pool string) (id, grpc string, ok bool) {
	ranked := Rank(pool, q.latest)
	if len(ranked) < 2 || ranked[0] != q.cfg.Self {
		return "", "", false
	}
	return ranked[1], q.peers[ranked[1]].grpc, true
}

// Latest returns this node's latest view (sorted ids); Certified its certified
// view, nil before the first.
func (q *Quorum) Latest() []string    { return slices.Clone(q.latest) }
func (q *Quorum) Certified() []string { return slices.Clone(q.certified) }

// PeerGRPC returns the gRPC address a peer announced, if heard.
func (q *Quorum) PeerGRPC(id string) (string, bool) {
	if id == q.cfg.Self {
		return q.cfg.GRPC, true
	}
	p := q.peers[id]
	if p == nil || p.grpc == "" {
		return "", false
	}
	return p.grpc, true
}
