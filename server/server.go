// Package server implements quotad's gRPC API over the decision engine: it
// validates requests, maps them to the engine and its errors to status codes, and
// records metrics.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/quotad/quotad/config"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
	"github.com/quotad/quotad/server/limiter"
	"github.com/quotad/quotad/server/tokens"
)

// Server is the QuotaService. It is safe for concurrent use.
type Server struct {
	quotadv1.UnimplementedQuotaServiceServer
	lim     *limiter.Limiter
	metrics *Metrics
	log     *slog.Logger
	// pools holds the definitions in force (canonical), replaced whole by Apply.
	pools atomic.Pointer[map[string]config.Pool]
	// rejections lists the config source's refused values; nil for none.
	rejections atomic.Pointer[func() []config.Rejection]
}

// SetRejections tells the server where to read the config values its source
// refused, so that GetPool can show them. fn must be safe for concurrent use.
func (s *Server) SetRejections(fn func() []config.Rejection) { s.rejections.Store(&fn) }

// New returns a Server deciding with lim.
func New(lim *limiter.Limiter, metrics *Metrics, log *slog.Logger) *Server {
	s := &Server{lim: lim, metrics: metrics, log: log}
	s.pools.Store(&map[string]config.Pool{})
	return s
}

// Apply puts a configuration snapshot in force: the engine's pools follow it (see
// limiter.Limiter.Apply), and so do the provider styles and token settings the
// server reads. On error, the pools the engine refused keep their last good
// definition here too.
func (s *Server) Apply(snap config.Snapshot) error {
	cfgs := make(map[string]limiter.Config, len(snap.Pools))
	for name, p := range snap.Pools {
		cfgs[name] = p.Limiter()
	}
	err := s.lim.Apply(cfgs)
	var refused *limiter.ApplyError
	errors.As(err, &refused)
	old := *s.pools.Load()
	pools := make(map[string]config.Pool, len(snap.Pools))
	for name, p := range snap.Pools {
		if refused != nil && refused.Refused[name] != nil {
			prev, ok := old[name]
			if !ok {
				continue // never created
			}
			p = prev
		}
		pools[name] = p
	}
	s.pools.Store(&pools)
	return err
}

// pool returns the definition of the named pool.
func (s *Server) pool(name string) (config.Pool, error) {
	p, ok := (*s.pools.Load())[name]
	if !ok {
		return p, fmt.Errorf("%w: %q", limiter.ErrPoolNotFound, name)
	}
	return p, nil
}

// poolLabel is the metrics label of a requested pool: its name when the node has
// it, else "_unknown", so that requests cannot grow the metrics.
func (s *Server) poolLabel(name string) string {
	if _, err := s.pool(name); err != nil {
		return "_unknown"
	}
	return name
}

// Acquire implements QuotaService.Acquire.
func (s *Server) Acquire(ctx context.Context, r *quotadv1.AcquireRequest) (*quotadv1.AcquireResponse, error) {
	if err := validateAcquire(r); err != nil {
		s.metrics.refused(r.GetPool(), "invalid")
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	req := limiter.Request{
		Tenant:    r.GetTenant(),
		Cost:      limiter.Cost{Requests: r.GetCost().GetRequests(), InputTokens: r.GetCost().GetInputTokens(), OutputTokens: r.GetCost().GetOutputTokens()},
		MaxWait:   maxWait(ctx, r),
		RequestID: r.GetRequestId(),
	}
	if r.GetPrompt() != nil {
		p, err := s.pool(r.GetPool())
		if err != nil {
			s.metrics.refused(r.GetPool(), "not_found")
			return nil, toStatus(err)
		}
		if req.Cost, err = reserve(p, r); err != nil {
			s.metrics.refused(r.GetPool(), "invalid")
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	d, err := s.lim.Acquire(ctx, r.GetPool(), req)
	if err != nil {
		s.metrics.refused(s.poolLabel(r.GetPool()), reason(err))
		return nil, toStatus(err)
	}
	if !d.Granted {
		s.metrics.refused(r.GetPool(), "max_wait")
		return &quotadv1.AcquireResponse{Sequence: d.Seq, RetryAfter: durationpb.New(d.RetryAfter)}, nil
	}
	g := d.Grant
	s.metrics.granted(r.GetPool(), r.GetTenant(), g)
	resp := &quotadv1.AcquireResponse{
		Granted:  true,
		GrantId:  g.ID().String(),
		Cost:     &quotadv1.Cost{Requests: g.Cost.Requests, InputTokens: g.Cost.InputTokens, OutputTokens: g.Cost.OutputTokens},
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
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	p, err := s.pool(r.GetPool())
	if err != nil {
		return nil, toStatus(err)
	}
	// The engine applies the provider's view first: it describes the call as
	// admitted, before the settlement of its estimate.
	fb, pause := s.providerFeedback(p, r, r.GetRetryAfter().AsDuration())
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
	return &quotadv1.ReportResponse{
		Settlement: settlement,
		Charged:    &quotadv1.Cost{Requests: res.Charged.Requests, InputTokens: res.Charged.InputTokens, OutputTokens: res.Charged.OutputTokens},
	}, nil
}

// Renew implements QuotaService.Renew.
func (s *Server) Renew(ctx context.Context, r *quotadv1.RenewRequest) (*quotadv1.RenewResponse, error) {
	id, err := validateGrant(r.GetPool(), r.GetGrantId())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
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
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	counter, err := tokens.NewCounter()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	count, _, err := countPrompt(counter, r.GetModel(), r.GetPrompt())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &quotadv1.CountTokensResponse{Tokens: count.Tokens, Encoding: count.Encoding, Estimated: count.Estimated}, nil
}

// GetPool implements QuotaService.GetPool.
func (s *Server) GetPool(ctx context.Context, r *quotadv1.GetPoolRequest) (*quotadv1.PoolStatus, error) {
	if err := checkString("pool", r.GetPool(), maxPoolName, true); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	st, err := s.lim.Status(r.GetPool())
	if err != nil {
		return nil, toStatus(err)
	}
	if p, err := s.pool(r.GetPool()); err == nil {
		st.Provider = string(p.ProviderStyle())
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

// errorCodes maps engine errors to gRPC codes, most specific first.
var errorCodes = []struct {
	err    error
	code   codes.Code
	reason string
}{
	{limiter.ErrPoolNotFound, codes.NotFound, "not_found"},
	{limiter.ErrPoolRemoved, codes.NotFound, "pool_removed"},
	{limiter.ErrGrantNotFound, codes.NotFound, "grant_not_found"},
	{limiter.ErrCostTooLarge, codes.FailedPrecondition, "cost_too_large"},
	{limiter.ErrQuotaExhausted, codes.FailedPrecondition, "quota_exhausted"},
	{limiter.ErrQueueFull, codes.ResourceExhausted, "queue_full"},
	{limiter.ErrRequestIDReused, codes.InvalidArgument, "invalid"},
	{limiter.ErrInvalidCost, codes.InvalidArgument, "invalid"},
	{limiter.ErrInvalidUsage, codes.InvalidArgument, "invalid"},
	{limiter.ErrClosed, codes.Unavailable, "shutting_down"},
	{limiter.ErrNotOwner, codes.Aborted, "not_owner"},
	{limiter.ErrFenced, codes.Unavailable, "fenced"},
	{context.Canceled, codes.Canceled, "cancelled"},
	{context.DeadlineExceeded, codes.DeadlineExceeded, "deadline"},
}

// toStatus maps an engine error to its status, with an ErrorInfo whose reason
// (e.g. QUOTA_EXHAUSTED, COST_TOO_LARGE) tells apart answers that share a code.
func toStatus(err error) error {
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			st := status.New(e.code, err.Error())
			if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: strings.ToUpper(e.reason), Domain: "quotad"}); derr == nil {
				st = d
			}
			return st.Err()
		}
	}
	return status.Error(codes.Internal, err.Error())
}

func reason(err error) string {
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return e.reason
		}
	}
	return "internal"
}
