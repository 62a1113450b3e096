// Package server implements quotad's gRPC API over the decision engine: it
// validates requests, maps them to the engine and its errors to status codes, and
// records metrics.
package server

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
	"github.com/quotad/quotad/server/limiter"
)

// Server is the QuotaService. It is safe for concurrent use.
type Server struct {
	quotadv1.UnimplementedQuotaServiceServer
	lim     *limiter.Limiter
	metrics *Metrics
	log     *slog.Logger
}

// New returns a Server deciding with lim.
func New(lim *limiter.Limiter, metrics *Metrics, log *slog.Logger) *Server {
	return &Server{lim: lim, metrics: metrics, log: log}
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
	d, err := s.lim.Acquire(ctx, r.GetPool(), req)
	if err != nil {
		s.metrics.refused(r.GetPool(), reason(err))
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
		Waited:   durationpb.New(g.Waited),
		LeaseTtl: durationpb.New(g.LeaseTTL),
		Sequence: g.Seq,
		Shadow:   g.Shadow,
	}
	if g.Shadow {
		resp.ShadowWait = durationpb.New(g.ShadowWait)
	}
	return resp, nil
}

// maxWait returns the request's wait budget: max_wait when set, else the time left
// before the call's deadline (so a wait that cannot end in time is refused at once
// with its retry_after), else no bound.
func maxWait(ctx context.Context, r *quotadv1.AcquireRequest) time.Duration {
	if mw := r.GetMaxWait(); mw != nil {
		return mw.AsDuration()
	}
	if deadline, ok := ctx.Deadline(); ok {
		return max(time.Until(deadline), time.Nanosecond)
	}
	return -1
}

// Report implements QuotaService.Report.
func (s *Server) Report(ctx context.Context, r *quotadv1.ReportRequest) (*quotadv1.ReportResponse, error) {
	id, err := validateReport(r)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	u := limiter.Usage{InputTokens: r.GetUsage().GetInputTokens(), OutputTokens: r.GetUsage().GetOutputTokens()}
	outcome := outcomes[r.GetOutcome()]
	res, err := s.lim.Report(r.GetPool(), id, u, outcome, r.GetRetryAfter().AsDuration())
	if err != nil {
		return nil, toStatus(err)
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

// GetPool implements QuotaService.GetPool.
func (s *Server) GetPool(ctx context.Context, r *quotadv1.GetPoolRequest) (*quotadv1.PoolStatus, error) {
	if err := checkString("pool", r.GetPool(), maxPoolName, true); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	st, err := s.lim.Status(r.GetPool())
	if err != nil {
		return nil, toStatus(err)
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
	{limiter.ErrQueueFull, codes.ResourceExhausted, "queue_full"},
	{limiter.ErrRequestIDReused, codes.InvalidArgument, "invalid"},
	{limiter.ErrInvalidCost, codes.InvalidArgument, "invalid"},
	{limiter.ErrInvalidUsage, codes.InvalidArgument, "invalid"},
	{limiter.ErrClosed, codes.Unavailable, "shutting_down"},
	{context.Canceled, codes.Canceled, "cancelled"},
	{context.DeadlineExceeded, codes.DeadlineExceeded, "deadline"},
}

func toStatus(err error) error {
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return status.Error(e.code, err.Error())
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
