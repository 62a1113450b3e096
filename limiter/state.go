package limiter

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	statev1 "github.com/quotad/quotad/proto/quotad/state/v1"
)

// StateFormat is the PoolState format this engine writes.
const StateFormat = 1

func costState(c Cost) *statev1.Cost {
	return &statev1.Cost{Requests: c.Requests, InputTokens: c.InputTokens, OutputTokens: c.OutputTokens}
}

func costFromState(c *statev1.Cost) Cost {
	return Cost{Requests: c.GetRequests(), InputTokens: c.GetInputTokens(), OutputTokens: c.GetOutputTokens()}
}

var leaseStates = map[leaseState]statev1.LeaseState_State{
	leaseOpen:     statev1.LeaseState_STATE_OPEN,
	leaseExpired:  statev1.LeaseState_STATE_EXPIRED,
	leaseReported: statev1.LeaseState_STATE_REPORTED,
}

// Snapshot returns the pool's whole state at now (waiters excepted: they belong to
// the connections that wait). wall is the writer's wall clock.
func (p *Pool) Snapshot(now int64, name string, wall time.Time) *statev1.PoolState {
	p.Advance(now)
	st := &statev1.PoolState{
		FormatVersion:    StateFormat,
		Pool:             name,
		Epoch:            p.epoch,
		NextSequence:     p.nextSeq,
		PausedFor:        durationpb.New(time.Duration(max(p.paused-now, 0))),
		TakenAt:          timestamppb.New(wall),
		ShadowWaitTotal:  durationpb.New(time.Duration(p.shadowWait)),
		ShadowDelayed:    p.shadowDelayed,
		UnreportedLeases: p.unreported,
	}
	for i := range p.buckets {
		st.Buckets = append(st.Buckets, &statev1.BucketState{
			Resource: p.cfg.Limits[i].Resource.String(),
			Period:   durationpb.New(p.cfg.Limits[i].Period),
			Deficit:  durationpb.New(time.Duration(p.buckets[i].deficit(now))),
		})
	}
	for _, list := range []*leaseList{&p.open, &p.tombs} {
		for l := list.head; l != nil; l = l.next {
			st.Leases = append(st.Leases, &statev1.LeaseState{
				Sequence:  l.seq,
				Cost:      costState(l.cost),
				RequestId: l.requestID,
				State:     leaseStates[l.state],
				ExpiresIn: durationpb.New(time.Duration(l.expires - now)),
			})
		}
	}
	return st
}

// Restore replaces the pool's buckets, leases and counters with st, as of elapsed
// after it was taken (elapsed refills the buckets and runs down the leases). Buckets
// are matched by resource and period; limits st lacks keep their current level.
// Waiters are kept.
func (p *Pool) Restore(now int64, st *statev1.PoolState, elapsed time.Duration) error {
	if st.GetFormatVersion() > StateFormat {
		return fmt.Errorf("pool state format %d is newer than this node's %d", st.GetFormatVersion(), StateFormat)
	}
	for _, bs := range st.GetBuckets() {
		if _, err := ParseResource(bs.GetResource()); err != nil {
			return fmt.Errorf("pool state: %w", err) // before anything changes
		}
	}
	el := int64(max(elapsed, 0))
	for _, bs := range st.GetBuckets() {
		r, _ := ParseResource(bs.GetResource())
		for i, l := range p.cfg.Limits {
			if l.Resource == r && l.Period == bs.GetPeriod().AsDuration() {
				d := int64(bs.GetDeficit().AsDuration()) - el
				p.buckets[i].full = now + max(min(d, never), 0)
			}
		}
	}
	for l := p.open.head; l != nil; l = p.open.head {
		p.open.remove(l)
		p.closeLease(l)
		p.forget(l)
	}
	for l := p.tombs.head; l != nil; l = p.tombs.head {
		p.tombs.remove(l)
		p.forget(l)
	}
	for _, ls := range st.GetLeases() {
		p.restoreLease(now, ls, el)
	}
	p.epoch = st.GetEpoch()
	p.nextSeq = max(p.nextSeq, st.GetNextSequence())
	p.paused = now + int64(st.GetPausedFor().AsDuration()) - el
	p.shadowWait = int64(st.GetShadowWaitTotal().AsDuration())
	p.shadowDelayed = st.GetShadowDelayed()
	p.unreported = st.GetUnreportedLeases()
	p.Advance(now)
	return nil
}

func (p *Pool) restoreLease(now int64, ls *statev1.LeaseState, elapsed int64) {
	l := &lease{seq: ls.GetSequence(), cost: costFromState(ls.GetCost()), requestID: ls.GetRequestId(),
		expires: now + int64(ls.GetExpiresIn().AsDuration()) - elapsed}
	switch ls.GetState() {
	case statev1.LeaseState_STATE_OPEN:
		l.state = leaseOpen
	case statev1.LeaseState_STATE_REPORTED:
		l.state = leaseReported
	default:
		l.state = leaseExpired
	}
	if l.seq == 0 || p.leases[l.seq] != nil {
		return // no grant has sequence 0; a repeated one would corrupt the lists
	}
	p.nextSeq = max(p.nextSeq, l.seq+1) // never issue a remembered sequence again
	if p.leases == nil {
		p.leases = make(map[uint64]*lease)
	}
	p.leases[l.seq] = l
	if l.requestID != "" {
		if p.byRequest == nil {
			p.byRequest = make(map[string]*lease)
		}
		p.byRequest[l.requestID] = l
	}
	if l.state == leaseOpen {
		p.open.insert(l)
		p.inFlight++
		p.unsettled = p.unsettled.add(l.cost)
		return
	}
	p.tombs.insert(l)
}
