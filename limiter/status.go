package limiter

import (
	"sort"
	"time"
)

// PoolStatus describes a pool at one instant: what GetPool shows and metrics
// export. The server turns it into the API's message.
type PoolStatus struct {
	Limits          []LimitStatus
	ConcurrentLimit int64 // 0: no cap
	InFlight        int64 // open leases holding a slot
	Waiters         int
	Tenants         []TenantStatus // sorted by name
	Unsettled       Cost           // estimates held by open leases
	Tombstones      int
	PausedFor       time.Duration // left in a pause imposed by a provider 429
	Shadow          bool
	ShadowWaitTotal time.Duration
	ShadowDelayed   uint64
	NextSequence    uint64
	LeaseTTL        time.Duration
	// QuotaExhausted is set while the pool fails fast (the provider said its
	// quota is spent), for QuotaExhaustedFor more.
	QuotaExhausted    string
	QuotaExhaustedFor time.Duration
	UnreportedLeases  uint64
}

// LimitStatus is one rate limit's bucket.
type LimitStatus struct {
	Resource Resource
	Period   time.Duration
	Amount   int64 // refill per period, after headroom
	Capacity int64
	Level    int64 // negative in debt
	Debt     int64
	// ProviderLimit is set while the provider reports a lower limit than the
	// configured one, for ProviderLimitFor more.
	ProviderLimit    int64
	ProviderLimitFor time.Duration
}

// TenantStatus is one waiting tenant's share of the queue.
type TenantStatus struct {
	Tenant  string
	Weight  int64
	Waiters int
	Queued  Cost // cost of its waiting calls
}

// Status describes the pool at now.
func (p *Pool) Status(now int64) PoolStatus {
	p.Advance(now)
	s := PoolStatus{
		ConcurrentLimit:  p.cfg.Concurrent,
		InFlight:         p.inFlight,
		Waiters:          p.queue.n,
		Unsettled:        p.unsettled,
		Tombstones:       p.tombs.n,
		PausedFor:        time.Duration(max(p.paused-now, 0)),
		Shadow:           p.cfg.Shadow,
		ShadowWaitTotal:  time.Duration(p.shadowWait),
		ShadowDelayed:    p.shadowDelayed,
		NextSequence:     p.nextSeq,
		LeaseTTL:         p.cfg.LeaseTTL,
		UnreportedLeases: p.unreported,
	}
	for i := range p.buckets {
		b, l := &p.buckets[i], p.cfg.Limits[i]
		level := b.level(now)
		ls := LimitStatus{
			Resource: l.Resource,
			Period:   l.Period,
			Amount:   b.rate.amount,
			Capacity: b.rate.capacity,
			Level:    level,
			Debt:     max(-level, 0),
		}
		if b.providerUntil != 0 {
			ls.ProviderLimit = b.rate.amount
			ls.ProviderLimitFor = time.Duration(b.providerUntil - now)
		}
		s.Limits = append(s.Limits, ls)
	}
	if p.exhausted != "" && p.exhaustedUntil > now {
		s.QuotaExhausted = p.exhausted
		s.QuotaExhaustedFor = time.Duration(p.exhaustedUntil - now)
	}
	for name, t := range p.queue.tenants {
		s.Tenants = append(s.Tenants, TenantStatus{Tenant: name, Weight: int64(t.weight), Waiters: t.n, Queued: t.queued})
	}
	sort.Slice(s.Tenants, func(i, j int) bool { return s.Tenants[i].Tenant < s.Tenants[j].Tenant })
	return s
}
