package server

import (
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/quotad/quotad/limiter"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// Conversions between the engine's plain types and the API's messages.

func costMessage(c limiter.Cost) *quotadv1.Cost {
	return &quotadv1.Cost{Requests: c.Requests, InputTokens: c.InputTokens, OutputTokens: c.OutputTokens}
}

func costOf(c *quotadv1.Cost) limiter.Cost {
	return limiter.Cost{Requests: c.GetRequests(), InputTokens: c.GetInputTokens(), OutputTokens: c.GetOutputTokens()}
}

func poolStatusMessage(name string, s limiter.PoolStatus) *quotadv1.PoolStatus {
	out := &quotadv1.PoolStatus{
		Pool:             name,
		ConcurrentLimit:  s.ConcurrentLimit,
		InFlight:         s.InFlight,
		Waiters:          int64(s.Waiters),
		Unsettled:        costMessage(s.Unsettled),
		Tombstones:       int64(s.Tombstones),
		PausedFor:        durationpb.New(s.PausedFor),
		Shadow:           s.Shadow,
		ShadowWaitTotal:  durationpb.New(s.ShadowWaitTotal),
		ShadowDelayed:    s.ShadowDelayed,
		NextSequence:     s.NextSequence,
		LeaseTtl:         durationpb.New(s.LeaseTTL),
		QuotaExhausted:   s.QuotaExhausted,
		UnreportedLeases: s.UnreportedLeases,
	}
	if s.QuotaExhausted != "" {
		out.QuotaExhaustedFor = durationpb.New(s.QuotaExhaustedFor)
	}
	for _, l := range s.Limits {
		ls := &quotadv1.LimitStatus{
			Resource: l.Resource.String(),
			Period:   durationpb.New(l.Period),
			Amount:   l.Amount,
			Capacity: l.Capacity,
			Level:    l.Level,
			Debt:     l.Debt,
		}
		if l.ProviderLimit != 0 {
			ls.ProviderLimit = l.ProviderLimit
			ls.ProviderLimitFor = durationpb.New(l.ProviderLimitFor)
		}
		out.Limits = append(out.Limits, ls)
	}
	for _, t := range s.Tenants {
		out.Tenants = append(out.Tenants, &quotadv1.TenantStatus{
			Tenant: t.Tenant, Weight: t.Weight, Waiters: int64(t.Waiters), Queued: costMessage(t.Queued),
		})
	}
	return out
}
