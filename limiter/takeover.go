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
		tightest := -1 // the bucket of r's limits holding the least
		for i := range p.buckets {
			if p.cfg.Limits[i].Resource == r && (tightest < 0 || p.buckets[i].level(now) < p.buckets[tightest].level(now)) {
				tightest = i
			}
		}
		if tightest < 0 {
			continue
		}
		t := &p.buckets[tightest]
		held := t.rate.capNs - t.deficit(now) // its refill in hand, part of a unit included
		if held <= 0 {
			continue
		}
		units := t.rate.unitsInUp(held)
		for i := range p.buckets {
			if b := &p.buckets[i]; p.cfg.Limits[i].Resource == r {
				if i == tightest {
					b.debit(now, held) // exactly empty: not even part of a unit is left
				} else {
					b.debit(now, b.rate.nsFor(units))
				}
			}
		}
	}
	if p.cfg.Concurrent > 0 {
		p.phantoms = max(p.cfg.Concurrent-p.inFlight, 0)
		p.phantomUntil = now + int64(p.cfg.LeaseTTL)
	}
	p.nextSeq += takeoverSeqGap
}
