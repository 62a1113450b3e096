// Package server implements quotad's gRPC API over the decision engine: it
// validates requests, maps them to the engine and its errors to status codes, and
// records metrics.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/quotad/quotad/config"
	"github.com/quotad/quotad/limiter"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
	"github.com/quotad/quotad/provider"
	"github.com/quotad/quotad/tokens"
)

// Server is the QuotaService. It is safe for concurrent use. The pools'
// definitions live in the engine (each pool's config.Pool is its limiter.Config's
// Definition), so that what the server reads of a pool (its provider style and
// token settings) is always what the engine enforces.
type Server struct {
	quotadv1.UnimplementedQuotaServiceServer
	lim     *limiter.Limiter
	metrics *Metrics
	log     *slog.Logger
	// rejections lists the config source's refused values; nil for none.
	rejections atomic.Pointer[func() []config.Rejection]
}

// SetRejections tells the server where to read the config values its source
// refused, so that GetPool can show them. fn must be safe for concurrent use.
func (s *Server) SetRejections(fn func() []config.Rejection) { s.rejections.Store(&fn) }

// New returns a Server deciding with lim.
func New(lim *limiter.Limiter, metrics *Metrics, log *slog.Logger) *Server {
	return &Server{lim: lim, metrics: metrics, log: log}
}

// Apply puts a configuration snapshot in force: the engine's pools follow it (see
// limiter.Limiter.Apply). A pool the engine refuses keeps its last good
// definition, provider settings included.
func (s *Server) Apply(snap config.Snapshot) error {
	cfgs := make(map[string]limiter.Config, len(snap.Pools))
	for name, p := range snap.Pools {
		cfg := p.Limiter()
		cfg.Definition = p
		cfgs[name] = cfg
	}
	return s.lim.Apply(cfgs)
}

// pool returns the definition in force of the named pool.
func (s *Server) pool(name string) (config.Pool, error) {
	def, err := s.lim.Definition(name)
	if err != nil {
		return config.Pool{}, err
	}
	p, ok := def.(config.Pool)
	if !ok {
		return config.Pool{}, fmt.Errorf("%w: %q has no definition", limiter.ErrPoolNotFound, name)
	}
	return p, nil
}

// poolLabel is the metrics label of a requested pool: its name when the node has
// it, else "_unknown", so that requests cannot grow the metrics.
func (s *Server) poolLabel(name string) string {
	if _, err := s.lim.Definition(name); err != nil {
		return unknownPool
	}
	return name
}

// Acquire implements QuotaService.Acquire.
func (s *Server) Acquire(ctx context.Context, r *quotadv1.AcquireRequest) (*quotadv1.AcquireResponse, error) {
	if err := validateAcquire(r); err != nil {
		s.metrics.refused(unknownPool, reasonInvalid)
		return nil, invalid(err)
	}
	req := limiter.Request{
		Tenant:    r.GetTenant(),
		Cost:      costOf(r.GetCost()),
		MaxWait:   maxWait(ctx, r),
		RequestID: r.GetRequestId(),
	}
	if r.GetPrompt() != nil {
		p, err := s.pool(r.GetPool())
		if err != nil {
			s.metrics.refused(unknownPool, reasonLabel(err))
			return nil, toStatus(err)
		}
		if req.Cost, err = reserve(p, r); err != nil {
			s.metrics.refused(r.GetPool(), reasonInvalid)
			return nil, invalid(err)
		}
	}
	d, err := s.lim.Acquire(ctx, r.GetPool(), req)
	if err != nil {
		s.metrics.refused(s.poolLabel(r.GetPool()), reasonLabel(err))
		return nil, toStatus(err)
	}
	if !d.Granted {
		s.metrics.refused(r.GetPool(), reasonMaxWait)
		return &quotadv1.AcquireResponse{Sequence: d.Seq, RetryAfter: durationpb.New(d.RetryAfter)}, nil
	}
	g := d.Grant
	s.metrics.granted(r.GetPool(), r.GetTenant(), g)
	resp := &quotadv1.AcquireResponse{
		Granted:  true,
		GrantId:  g.ID().String(),
		Cost:     costMessage(g.Cost),
		LeaseTtl: durationpb.New(g.LeaseTTL),
		Sequence: g.Seq,
		Shadow:   g.Shadow,
	}
	if g.Waited > 0 { // unset reads as zero
		resp.Waited = durationpb.New(g.Waited)
	}
	if g.Shadow {
		resp.ShadowWait = durationpb.New(g.ShadowWait)
	}
	return resp, nil
}

// maxWait returns the request's wait budget: the shorter of max_wait and the time
// left before the call's deadline (so a wait that cannot end in time is refused at
// once with its retry_after), or no bound when neither is set.
func maxWait(ctx context.Context, r *quotadv1.AcquireRequest) time.Duration {
	mw := time.Duration(-1)
	if d := r.GetMaxWait(); d != nil {
		mw = d.AsDuration()
	}
	if deadline, ok := ctx.Deadline(); ok && mw != 0 {
		left := max(time.Until(deadline), time.Nanosecond)
		if mw < 0 || left < mw {
			mw = left
		}
	}
	return mw
}

// Report implements QuotaService.Report.
func (s *Server) Report(ctx context.Context, r *quotadv1.ReportRequest) (*quotadv1.ReportResponse, error) {
	id, err := validateReport(r)
	if err != nil {
		return nil, invalid(err)
	}
	p, err := s.pool(r.GetPool())
	if err != nil {
		return nil, toStatus(err)
	}
	// The engine applies the provider's view first: it describes the call as
	// admitted, before the settlement of its estimate.
	fb, pause := s.providerFeedback(p, r)
	outcome := outcomes[r.GetOutcome()]
	res, err := s.lim.ReportWithFeedback(r.GetPool(), id, settledUsage(p, r.GetUsage()), outcome, pause, fb)
	if err != nil {
		return nil, toStatus(err)
	}
	if fb.Exhausted != "" && res.Settlement != limiter.Duplicate {
		s.log.Warn("pool fails fast: provider quota exhausted", "pool", p.Name, "reason", fb.Exhausted, "for", fb.ExhaustedFor)
	}
	settlement := quotadv1.Settlement(res.Settlement)
	s.metrics.reports.WithLabelValues(r.GetPool(), r.GetOutcome().String(), settlement.String()).Inc()
	if outcome == limiter.RateLimited {
		s.metrics.providerLimit.WithLabelValues(r.GetPool()).Inc()
	}
	return &quotadv1.ReportResponse{Settlement: settlement, Charged: costMessage(res.Charged)}, nil
}

// Renew implements QuotaService.Renew.
func (s *Server) Renew(ctx context.Context, r *quotadv1.RenewRequest) (*quotadv1.RenewResponse, error) {
	id, err := validateGrant(r.GetPool(), r.GetGrantId())
	if err != nil {
		return nil, invalid(err)
	}
	ttl, err := s.lim.Renew(r.GetPool(), id)
	if err != nil {
		return nil, toStatus(err)
	}
	return &quotadv1.RenewResponse{LeaseTtl: durationpb.New(ttl)}, nil
}

// CountTokens implements QuotaService.CountTokens.
func (s *Server) CountTokens(ctx context.Context, r *quotadv1.CountTokensRequest) (*quotadv1.CountTokensResponse, error) {
	if err := checkString("model", r.GetModel(), maxTenant, false); err != nil {
		return nil, invalid(err)
	}
	// No pool: the tokenizer is the one any style knows for the model.
	count, _, err := countPrompt(provider.MustLookup(provider.Default), tokens.DefaultCharsPerToken, r.GetModel(), r.GetPrompt())
	if err != nil {
		return nil, invalid(err)
	}
	return &quotadv1.CountTokensResponse{Tokens: count.Tokens, Encoding: count.Encoding, Estimated: count.Estimated}, nil
}

// GetPool implements QuotaService.GetPool.
func (s *Server) GetPool(ctx context.Context, r *quotadv1.GetPoolRequest) (*quotadv1.PoolStatus, error) {
	if err := checkString("pool", r.GetPool(), maxPoolName, true); err != nil {
		return nil, invalid(err)
	}
	status, err := s.lim.Status(r.GetPool())
	if err != nil {
		return nil, toStatus(err)
	}
	st := poolStatusMessage(r.GetPool(), status)
	if p, err := s.pool(r.GetPool()); err == nil {
		st.Provider = string(p.Style().Name())
	}
	if fn := s.rejections.Load(); fn != nil {
		for _, rej := range (*fn)() {
			if rej.Pool == r.GetPool() {
				st.ConfigError = fmt.Sprintf("%s (revision %d) refused, last good definition in force: %v", rej.Key, rej.Revision, rej.Err)
			}
		}
	}
	return st, nil
}
