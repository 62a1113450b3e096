package quotad

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

func TestAcquireAndReport(t *testing.T) {
	srv := newFakeServer()
	c := dial(t, []string{serve(t, srv)})
	ctx := testContext(t)

	g, err := c.Acquire(ctx, "openai/prod/m", Cost{Requests: 1, InputTokens: 100, OutputTokens: 50},
		WithTenant("svc-a"), WithRequestID("req-1"), WithMaxWait(0))
	if err != nil {
		t.Fatal(err)
	}
	if g.ID != "g-req-1" || g.Pool != "openai/prod/m" || g.Sequence != 7 || g.LeaseTTL != time.Minute || g.Local ||
		g.Cost != (Cost{Requests: 1, InputTokens: 100, OutputTokens: 50}) {
		t.Errorf("grant = %+v", g)
	}
	req := srv.acquireRequests()[0]
	if req.GetTenant() != "svc-a" || req.GetRequestId() != "req-1" || req.MaxWait == nil || req.GetMaxWait().AsDuration() != 0 {
		t.Errorf("acquire request = %v", req)
	}

	h := http.Header{}
	h.Set("X-Ratelimit-Remaining-Tokens", "900")
	h.Set("Anthropic-Ratelimit-Requests-Remaining", "5")
	h.Set("Retry-After", "1")
	h.Set("Set-Cookie", "secret")
	if err := g.Report(ctx, Usage{InputTokens: 90, OutputTokens: 10}, WithHeaders(h)); err != nil {
		t.Fatal(err)
	}
	rep := <-srv.reported
	if rep.GetGrantId() != g.ID || rep.GetPool() != g.Pool || rep.GetOutcome() != quotadv1.Outcome_OUTCOME_SUCCESS ||
		rep.GetUsage().GetInputTokens() != 90 || rep.GetUsage().GetOutputTokens() != 10 {
		t.Errorf("report request = %v", rep)
	}
	wantHeaders := map[string]string{
		"x-ratelimit-remaining-tokens":           "900",
		"anthropic-ratelimit-requests-remaining": "5",
		"retry-after":                            "1",
	}
	if len(rep.GetHeaders()) != len(wantHeaders) {
		t.Errorf("headers = %v, want %v", rep.GetHeaders(), wantHeaders)
	}
	for k, v := range wantHeaders {
		if rep.GetHeaders()[k] != v {
			t.Errorf("header %s = %q, want %q", k, rep.GetHeaders()[k], v)
		}
	}

	// A second Report is a no-op.
	if err := g.Report(ctx, Usage{}); err != nil {
		t.Errorf("second Report: %v", err)
	}
	if _, reports, _ := srv.counts(); reports != 1 {
		t.Errorf("server got %d reports, want 1", reports)
	}
}

func TestAcquireWithoutMaxWaitSendsNone(t *testing.T) {
	srv := newFakeServer()
	c := dial(t, []string{serve(t, srv)})
	g, err := c.Acquire(testContext(t), "p", Cost{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Report(testContext(t), Usage{}, OutcomeNotSent)
	req := srv.acquireRequests()[0]
	if req.MaxWait != nil {
		t.Errorf("max_wait = %v, want unset", req.MaxWait)
	}
	if len(req.GetRequestId()) != 32 {
		t.Errorf("generated request id %q, want 32 hex digits", req.GetRequestId())
	}
}

func TestRetryNextAddressKeepsRequestID(t *testing.T) {
	down := newFakeServer()
	down.acquireFn = func(context.Context, *quotadv1.AcquireRequest) (*quotadv1.AcquireResponse, error) {
		return nil, status.Error(codes.Unavailable, "draining")
	}
	up := newFakeServer()
	c := dial(t, []string{deadAddr(t), serve(t, down), serve(t, up)})
	ctx := testContext(t)

	g, err := c.Acquire(ctx, "p", Cost{Requests: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Report(ctx, Usage{})
	d, u := down.acquireRequests(), up.acquireRequests()
	if len(d) != 1 || len(u) != 1 {
		t.Fatalf("acquires: draining node %d, live node %d; want 1 and 1", len(d), len(u))
	}
	if d[0].GetRequestId() == "" || d[0].GetRequestId() != u[0].GetRequestId() {
		t.Errorf("request ids %q then %q, want the same", d[0].GetRequestId(), u[0].GetRequestId())
	}

	// The client now stays on the node that answered.
	g2, err := c.Acquire(ctx, "p", Cost{Requests: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Report(ctx, Usage{})
	if n := len(down.acquireRequests()); n != 1 {
		t.Errorf("draining node got %d acquires, want 1", n)
	}
}

func TestReportAndRenewRetryNextAddress(t *testing.T) {
	first := newFakeServer()
	first.leaseTTL = 300 * time.Millisecond
	first.reportFn = func(context.Context, *quotadv1.ReportRequest) (*quotadv1.ReportResponse, error) {
		return nil, status.Error(codes.Unavailable, "down")
	}
	first.renewFn = func(context.Context, *quotadv1.RenewRequest) (*quotadv1.RenewResponse, error) {
		return nil, status.Error(codes.Unavailable, "down")
	}
	second := newFakeServer()
	second.leaseTTL = 300 * time.Millisecond
	c := dial(t, []string{serve(t, first), serve(t, second)})
	ctx := testContext(t)

	g, err := c.Acquire(ctx, "p", Cost{Requests: 1})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-second.renewed:
		if r.GetGrantId() != g.ID {
			t.Errorf("renewed %q, want %q", r.GetGrantId(), g.ID)
		}
	case <-ctx.Done():
		t.Fatal("no Renew reached the second node")
	}
	if err := g.Report(ctx, Usage{InputTokens: 1}); err != nil {
		t.Fatal(err)
	}
	if r := <-second.reported; r.GetGrantId() != g.ID {
		t.Errorf("reported %q, want %q", r.GetGrantId(), g.ID)
	}
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		code   codes.Code
		reason quotadv1.ErrorReason
		want   error
	}{
		{codes.InvalidArgument, quotadv1.ErrorReason_INVALID_REQUEST, ErrInvalid},
		{codes.InvalidArgument, quotadv1.ErrorReason_REQUEST_ID_REUSED, ErrRequestIDReused},
		{codes.NotFound, quotadv1.ErrorReason_POOL_NOT_FOUND, ErrPoolNotFound},
		{codes.NotFound, quotadv1.ErrorReason_POOL_REMOVED, ErrPoolRemoved},
		{codes.NotFound, quotadv1.ErrorReason_GRANT_NOT_FOUND, ErrGrantNotFound},
		{codes.FailedPrecondition, quotadv1.ErrorReason_COST_TOO_LARGE, ErrCostTooLarge},
		{codes.FailedPrecondition, quotadv1.ErrorReason_QUOTA_EXHAUSTED, ErrQuotaExhausted},
		{codes.ResourceExhausted, quotadv1.ErrorReason_QUEUE_FULL, ErrQueueFull},
		{codes.ResourceExhausted, quotadv1.ErrorReason_REQUEST_TOO_LARGE, ErrRequestTooLarge},
		// No reason (an older server, a proxy): the code decides.
		{codes.NotFound, quotadv1.ErrorReason_ERROR_REASON_UNSPECIFIED, ErrPoolNotFound},
		{codes.InvalidArgument, quotadv1.ErrorReason_ERROR_REASON_UNSPECIFIED, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.reason.String(), func(t *testing.T) {
			srv := newFakeServer()
			srv.acquireFn = func(context.Context, *quotadv1.AcquireRequest) (*quotadv1.AcquireResponse, error) {
				if tt.reason == quotadv1.ErrorReason_ERROR_REASON_UNSPECIFIED {
					return nil, status.Error(tt.code, "server says why")
				}
				return nil, tt.reason.Error(tt.code, "server says why")
			}
			c := dial(t, []string{serve(t, srv)})
			_, err := c.Acquire(testContext(t), "p", Cost{Requests: 1})
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			for _, other := range reasonErrors {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("err = %v is also %v", err, other)
				}
			}
			if status.Code(err) != tt.code || !strings.Contains(err.Error(), "server says why") || Reason(err) != tt.reason {
				t.Errorf("err = %v (reason %v): want the server's status, message and reason kept", err, Reason(err))
			}
		})
	}
}

func TestNotGranted(t *testing.T) {
	srv := newFakeServer()
	srv.acquireFn = func(context.Context, *quotadv1.AcquireRequest) (*quotadv1.AcquireResponse, error) {
		return &quotadv1.AcquireResponse{Granted: false, RetryAfter: durationpb.New(3 * time.Second)}, nil
	}
	c := dial(t, []string{serve(t, srv)})
	_, err := c.Acquire(testContext(t), "p", Cost{Requests: 1}, WithMaxWait(time.Second))
	var ng *NotGrantedError
	if !errors.As(err, &ng) || ng.RetryAfter != 3*time.Second || ng.Pool != "p" {
		t.Fatalf("err = %v, want *NotGrantedError with RetryAfter 3s", err)
	}
}

func TestInvalidAcquireIsRejectedLocally(t *testing.T) {
	srv := newFakeServer()
	c := dial(t, []string{serve(t, srv)})
	ctx := testContext(t)
	for _, call := range []func() error{
		func() error { _, err := c.Acquire(ctx, "", Cost{}); return err },
		func() error { _, err := c.Acquire(ctx, "p", Cost{InputTokens: -1}); return err },
		func() error { _, err := c.Acquire(ctx, "p", Cost{}, WithMaxWait(-time.Second)); return err },
	} {
		if err := call(); !errors.Is(err, ErrInvalid) {
			t.Errorf("err = %v, want ErrInvalid", err)
		}
	}
	if n, _, _ := srv.counts(); n != 0 {
		t.Errorf("server got %d acquires, want 0", n)
	}
}

func TestRenewalUntilReport(t *testing.T) {
	srv := newFakeServer()
	srv.leaseTTL = 300 * time.Millisecond
	c := dial(t, []string{serve(t, srv)})
	ctx := testContext(t)

	g, err := c.Acquire(ctx, "p", Cost{Requests: 1})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case r := <-srv.renewed:
			if r.GetGrantId() != g.ID || r.GetPool() != "p" {
				t.Errorf("renew request = %v", r)
			}
		case <-ctx.Done():
			t.Fatal("lease not renewed")
		}
	}
	if err := g.Report(ctx, Usage{}); err != nil {
		t.Fatal(err)
	}
	_, _, before := srv.counts()
	time.Sleep(300 * time.Millisecond) // three renewal intervals
	if _, _, after := srv.counts(); after != before {
		t.Errorf("%d renewals after Report", after-before)
	}
}

func TestRenewalStopsOnNotFound(t *testing.T) {
	srv := newFakeServer()
	srv.leaseTTL = 300 * time.Millisecond
	srv.renewFn = func(context.Context, *quotadv1.RenewRequest) (*quotadv1.RenewResponse, error) {
		return nil, status.Error(codes.NotFound, "lease expired")
	}
	c := dial(t, []string{serve(t, srv)})
	ctx := testContext(t)
	g, err := c.Acquire(ctx, "p", Cost{Requests: 1})
	if err != nil {
		t.Fatal(err)
	}
	<-srv.renewed
	time.Sleep(300 * time.Millisecond) // three renewal intervals
	if _, _, renews := srv.counts(); renews != 1 {
		t.Errorf("%d renewals, want 1", renews)
	}
	if err := g.Report(ctx, Usage{}); err != nil {
		t.Fatal(err)
	}
}

func TestCloseStopsRenewalAndCalls(t *testing.T) {
	srv := newFakeServer()
	srv.leaseTTL = 60 * time.Millisecond
	c, err := Dial(context.Background(), []string{serve(t, srv)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	g, err := c.Acquire(ctx, "p", Cost{Requests: 1})
	if err != nil {
		t.Fatal(err)
	}
	<-srv.renewed
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Report(ctx, Usage{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Report after Close: %v, want ErrClosed", err)
	}
	if _, err := c.Acquire(ctx, "p", Cost{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Acquire after Close: %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestDoOutcomes(t *testing.T) {
	fnErr := errors.New("provider 500")
	tests := []struct {
		name       string
		err        error
		outcome    quotadv1.Outcome
		retryAfter time.Duration
		header     string
	}{
		{"success", nil, quotadv1.Outcome_OUTCOME_SUCCESS, 0, ""},
		{"not sent", errors.Join(errors.New("dial failed"), ErrNotSent), quotadv1.Outcome_OUTCOME_NOT_SENT, 0, ""},
		{"rate limited", &RateLimitedError{RetryAfter: 2 * time.Second, Headers: http.Header{"Retry-After": {"2"}}},
			quotadv1.Outcome_OUTCOME_RATE_LIMITED, 2 * time.Second, "2"},
		{"failed", fnErr, quotadv1.Outcome_OUTCOME_FAILED, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeServer()
			c := dial(t, []string{serve(t, srv)})
			err := c.Do(testContext(t), "p", Cost{Requests: 1, InputTokens: 10}, func(context.Context) (Usage, error) {
				return Usage{InputTokens: 8, OutputTokens: 3}, tt.err
			}, WithTenant("t"))
			if err != tt.err {
				t.Errorf("Do = %v, want fn's error %v", err, tt.err)
			}
			rep := <-srv.reported
			if rep.GetOutcome() != tt.outcome || rep.GetRetryAfter().AsDuration() != tt.retryAfter ||
				rep.GetHeaders()["retry-after"] != tt.header || rep.GetUsage().GetInputTokens() != 8 {
				t.Errorf("report = %v", rep)
			}
			if got := srv.acquireRequests()[0].GetTenant(); got != "t" {
				t.Errorf("tenant = %q", got)
			}
		})
	}
}

func TestDoReportsPanicAsFailed(t *testing.T) {
	srv := newFakeServer()
	c := dial(t, []string{serve(t, srv)})
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic not re-raised")
			}
		}()
		_ = c.Do(testContext(t), "p", Cost{Requests: 1}, func(context.Context) (Usage, error) { panic("boom") })
	}()
	if rep := <-srv.reported; rep.GetOutcome() != quotadv1.Outcome_OUTCOME_FAILED {
		t.Errorf("outcome = %v, want FAILED", rep.GetOutcome())
	}
}

func TestDoReturnsAcquireError(t *testing.T) {
	srv := newFakeServer()
	srv.acquireFn = func(context.Context, *quotadv1.AcquireRequest) (*quotadv1.AcquireResponse, error) {
		return nil, status.Error(codes.NotFound, "no such pool")
	}
	c := dial(t, []string{serve(t, srv)})
	called := false
	err := c.Do(testContext(t), "p", Cost{}, func(context.Context) (Usage, error) { called = true; return Usage{}, nil })
	if !errors.Is(err, ErrPoolNotFound) || called {
		t.Errorf("Do = %v (fn called: %v), want ErrPoolNotFound without calling fn", err, called)
	}
}

func TestFailClosed(t *testing.T) {
	c := dial(t, []string{deadAddr(t), deadAddr(t)}, WithUnavailableTimeout(400*time.Millisecond))
	start := time.Now()
	_, err := c.Acquire(testContext(t), "p", Cost{Requests: 1})
	if !errors.Is(err, ErrUnavailable) || status.Code(err) != codes.Unavailable {
		t.Fatalf("err = %v, want ErrUnavailable wrapping the gRPC error", err)
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 3*time.Second {
		t.Errorf("gave up after %v, want about the unavailable timeout", d)
	}

	// Now that quotad counts as unreachable, a call tries each address once.
	start = time.Now()
	if _, err := c.Acquire(testContext(t), "p", Cost{Requests: 1}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Errorf("second call took %v, want one quick round", d)
	}
}

func TestFailClosedContextEnds(t *testing.T) {
	c := dial(t, []string{deadAddr(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	_, err := c.Acquire(ctx, "p", Cost{Requests: 1})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrUnavailable and context.DeadlineExceeded", err)
	}
}

func TestFailOpenLocalLimiter(t *testing.T) {
	c := dial(t, []string{deadAddr(t)}, WithUnavailableTimeout(50*time.Millisecond), WithFailOpen(20, 2))
	ctx := testContext(t)
	start := time.Now()
	for range 6 { // 2 from the burst, then 4 at 20 per second: 200 ms
		g, err := c.Acquire(ctx, "p", Cost{Requests: 1, InputTokens: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if !g.Local || !strings.HasPrefix(g.ID, "local-") {
			t.Errorf("grant = %+v, want a local grant", g)
		}
		if err := g.Report(ctx, Usage{InputTokens: 5}); err != nil {
			t.Errorf("Report of a local grant: %v", err)
		}
	}
	if d := time.Since(start); d < 180*time.Millisecond || d > 3*time.Second {
		t.Errorf("6 local grants took %v, want about 200ms", d)
	}

	if _, err := c.Acquire(ctx, "p", Cost{Requests: 3}); !errors.Is(err, ErrCostTooLarge) {
		t.Errorf("err = %v, want ErrCostTooLarge for more than the burst", err)
	}
}

func TestFailOpenMaxWait(t *testing.T) {
	c := dial(t, []string{deadAddr(t)}, WithUnavailableTimeout(50*time.Millisecond), WithFailOpen(0.5, 1))
	ctx := testContext(t)
	if _, err := c.Acquire(ctx, "p", Cost{Requests: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Acquire(ctx, "p", Cost{Requests: 1}, WithMaxWait(time.Second))
	var ng *NotGrantedError
	if !errors.As(err, &ng) || ng.RetryAfter <= time.Second || ng.RetryAfter > 2*time.Second {
		t.Errorf("err = %v, want *NotGrantedError with RetryAfter in (1s, 2s]", err)
	}
}

func TestDialRejectsBadOptions(t *testing.T) {
	ctx := context.Background()
	for name, opts := range map[string][]Option{
		"zero rate":       {WithFailOpen(0, 10)},
		"negative rate":   {WithFailOpen(-1, 10)},
		"zero burst":      {WithFailOpen(1, 0)},
		"zero timeout":    {WithUnavailableTimeout(0)},
		"negative timout": {WithUnavailableTimeout(-time.Second)},
	} {
		if _, err := Dial(ctx, []string{"127.0.0.1:1"}, opts...); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := Dial(ctx, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("no address: err = %v, want ErrInvalid", err)
	}
}

func TestDialOptionsReachTheConnections(t *testing.T) {
	srv := newFakeServer()
	var methods []string
	var mu sync.Mutex
	record := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		mu.Lock()
		methods = append(methods, method)
		mu.Unlock()
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	c := dial(t, []string{serve(t, srv)},
		WithTransportCredentials(insecure.NewCredentials()),
		WithDialOptions(grpc.WithUnaryInterceptor(record)))
	g, err := c.Acquire(testContext(t), "p", Cost{Requests: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Report(testContext(t), Usage{}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{quotadv1.QuotaService_Acquire_FullMethodName, quotadv1.QuotaService_Report_FullMethodName}; !slices.Equal(methods, want) {
		t.Errorf("the dial option's interceptor saw %v, want %v", methods, want)
	}
}
