package limiter

// takeoverSeqGap is how far a new owner moves the sequence past its replica's: more
// than any owner grants between a replica and its fence, so no grant id repeats.
const takeoverSeqGap = 1 << 24

// TakeOver prepares the pool for a new owner that restored it from a replica (or
// created it afresh, without one). The old owner may have granted, between the
// replica and the moment it stopped, as much as each resource's tightest limit
// held; that much is charged to every limit of the resource, so the pool never
// starts fuller than the old owner could have left it, and a daily bucket loses
// about a minute's worth, not the day. Concurrency slots the replica does not
// account for are held as phantoms for one lease, until any lease granted in that
// gap must have expired. Sequences skip ahead past any the old owner may have
// issued. now must be at or after the old owner's fence.
func (p *Pool) TakeOver(now int64) {
	p.tick(now)
	defer p.serve(now)
	for r := Resource(0); r < numResources; r++ {
		most := int64(-1) // the tightest level among r's limits
		for i := range p.buckets {
			if p.cfg.Limits[i].Resource == r {
				level := max(p.buckets[i].level(now), 0)
				if most < 0 || level < most {
					most = level
				}
			}
		}
		if most <= 0 {
			continue
		}
		for i := range p.buckets {
			if b := &p.buckets[i]; p.cfg.Limits[i].Resource == r {
				b.debit(now, b.rate.nsFor(most))
			}
		}
	}
	if p.cfg.Concurrent > 0 {
		p.phantoms = max(p.cfg.Concurrent-p.inFlight, 0)
		p.phantomUntil = now + int64(p.cfg.LeaseTTL)
	}
	p.nextSeq += takeoverSeqGap
}
