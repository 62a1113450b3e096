package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/quotad/quotad/internal/clock"
	"github.com/quotad/quotad/internal/configtest"
	"github.com/quotad/quotad/limiter"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

const testPools = `
pools:
  - name: openai
    provider: openai
    max_output_tokens: 100
    limits:
      - {resource: requests, amount: 100, per: minute, initial: full}
      - {resource: tokens, amount: 10000, per: minute, initial: full}
  - name: anthropic
    provider: anthropic
    limits:
      - {resource: input_tokens, amount: 10000, per: minute, initial: full}
      - {resource: output_tokens, amount: 5000, per: minute, initial: full}
`

// startServer serves a Server over loopback gRPC with the test pools, on a fake clock.
func startServer(t *testing.T) (quotadv1.QuotaServiceClient, *clock.Fake) {
	t.Helper()
	api, _, fc := startTestServer(t)
	return api, fc
}

// startTestServer is startServer, also returning the Server.
func startTestServer(t testing.TB) (quotadv1.QuotaServiceClient, *Server, *clock.Fake) {
	t.Helper()
	fc := clock.NewFake(time.Unix(1_000_000, 0))
	lim := limiter.New(fc)
	srv := New(lim, NewMetrics(lim, 10), slog.New(slog.NewTextHandler(io.Discard, nil)))
	configtest.Apply(t, srv, testPools)
	gs := grpc.NewServer()
	quotadv1.RegisterQuotaServiceServer(gs, srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return quotadv1.NewQuotaServiceClient(conn), srv, fc
}

func TestReservationFollowsTheProviderStyle(t *testing.T) {
	api, _ := startServer(t)
	ctx := context.Background()
	// 210 characters of text that tokenizes to far fewer tokens: OpenAI charges the
	// character estimate, 53.
	text := strings.Repeat("international ", 15)
	msgs := []*quotadv1.Message{{Role: "user", Content: text}}
	count, err := api.CountTokens(ctx, &quotadv1.CountTokensRequest{Model: "gpt-4o", Prompt: &quotadv1.Prompt{Messages: msgs}})
	if err != nil {
		t.Fatal(err)
	}
	if count.GetEncoding() != "o200k_base" || count.GetEstimated() || count.GetTokens() >= 53 {
		t.Fatalf("count %+v: want an exact o200k count below the 53-token character estimate", count)
	}
	g, err := api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "openai", Model: "gpt-4o", N: 2,
		Prompt: &quotadv1.Prompt{Messages: msgs}})
	if err != nil {
		t.Fatal(err)
	}
	if c := g.GetCost(); c.GetInputTokens() != 53 || c.GetOutputTokens() != 200 || c.GetRequests() != 1 {
		t.Errorf("openai reservation %+v: want input 53 (characters/4), output 2 x 100 (the pool's max_output_tokens)", c)
	}
	maxOut := int64(300)
	g, err = api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "anthropic", Model: "claude-sonnet-4-5",
		Prompt: &quotadv1.Prompt{Messages: msgs}, MaxOutputTokens: &maxOut})
	if err != nil {
		t.Fatal(err)
	}
	if c := g.GetCost(); c.GetInputTokens() != 60 || c.GetOutputTokens() != 300 {
		t.Errorf("anthropic reservation %+v: want input 53 + 1 + 3 + 3 (content and role estimates, message and reply overhead), output 300", c)
	}
}

func TestReportSettlesCacheWrites(t *testing.T) {
	api, _ := startServer(t)
	ctx := context.Background()
	g, err := api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "anthropic", Cost: &quotadv1.Cost{InputTokens: 1000, OutputTokens: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := api.Report(ctx, &quotadv1.ReportRequest{Pool: "anthropic", GrantId: g.GetGrantId(),
		Usage: &quotadv1.Usage{InputTokens: 100, CacheCreationInputTokens: 200, CacheReadInputTokens: 5000, OutputTokens: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if c := r.GetCharged(); c.GetInputTokens() != 300 || c.GetOutputTokens() != 10 {
		t.Errorf("charged %+v: want input 100 + 200 cache writes (reads do not count), output 10", c)
	}
}

func TestProviderHeadersClampThePool(t *testing.T) {
	api, _ := startServer(t)
	ctx := context.Background()
	g, err := api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "openai", Cost: &quotadv1.Cost{InputTokens: 100}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = api.Report(ctx, &quotadv1.ReportRequest{Pool: "openai", GrantId: g.GetGrantId(),
		Usage: &quotadv1.Usage{InputTokens: 100},
		Headers: map[string]string{
			"x-ratelimit-limit-tokens": "10000", "x-ratelimit-remaining-tokens": "4000", "x-ratelimit-reset-tokens": "36s",
			"x-ratelimit-limit-requests": "80", "x-ratelimit-remaining-requests": "junk",
		}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := api.GetPool(ctx, &quotadv1.GetPoolRequest{Pool: "openai"})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range st.GetLimits() {
		switch l.GetResource() {
		case "tokens":
			if l.GetLevel() != 4000 {
				t.Errorf("tokens level %d, want the provider's 4000", l.GetLevel())
			}
		case "requests":
			if l.GetAmount() != 80 || l.GetProviderLimit() != 80 {
				t.Errorf("requests limit %+v: want the provider's lower 80 in force", l)
			}
		}
	}
}

func TestRateLimitedPausesThePool(t *testing.T) {
	api, fc := startServer(t)
	ctx := context.Background()
	g, err := api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "openai"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = api.Report(ctx, &quotadv1.ReportRequest{Pool: "openai", GrantId: g.GetGrantId(),
		Outcome: quotadv1.Outcome_OUTCOME_RATE_LIMITED, RetryAfter: durationpb.New(2 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	try := func() *quotadv1.AcquireResponse {
		t.Helper()
		r, err := api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "openai", MaxWait: durationpb.New(0)})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := try(); r.GetGranted() || r.GetRetryAfter().AsDuration() != 2*time.Second {
		t.Errorf("during the pause: %+v, want refused with retry_after 2s", r)
	}
	fc.Advance(2 * time.Second)
	if r := try(); !r.GetGranted() {
		t.Errorf("after the pause: %+v, want granted", r)
	}
}

func TestSpentQuotaFailsFast(t *testing.T) {
	api, _ := startServer(t)
	ctx := context.Background()
	g, err := api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "openai"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = api.Report(ctx, &quotadv1.ReportRequest{Pool: "openai", GrantId: g.GetGrantId(),
		Outcome: quotadv1.Outcome_OUTCOME_RATE_LIMITED, ProviderError: "insufficient_quota"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "openai"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "insufficient_quota") {
		t.Errorf("acquire after a spent quota: %v, want FAILED_PRECONDITION naming the reason", err)
	}
	var reason string
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			reason = info.GetReason()
		}
	}
	if reason != "QUOTA_EXHAUSTED" {
		t.Errorf("ErrorInfo reason %q, want QUOTA_EXHAUSTED", reason)
	}
}

func TestBadRequestsNameTheField(t *testing.T) {
	api, _ := startServer(t)
	ctx := context.Background()
	for _, tc := range []struct {
		req  *quotadv1.AcquireRequest
		code codes.Code
		want string
	}{
		{&quotadv1.AcquireRequest{}, codes.InvalidArgument, "pool is required"},
		{&quotadv1.AcquireRequest{Pool: "openai", Cost: &quotadv1.Cost{InputTokens: -1}}, codes.InvalidArgument, "cost.input_tokens -1"},
		{&quotadv1.AcquireRequest{Pool: "openai", Tenant: strings.Repeat("t", 200)}, codes.InvalidArgument, "tenant is 200 bytes"},
		{&quotadv1.AcquireRequest{Pool: "openai", MaxWait: durationpb.New(-time.Second)}, codes.InvalidArgument, "max_wait -1s"},
		{&quotadv1.AcquireRequest{Pool: "nope"}, codes.NotFound, `"nope"`},
		{&quotadv1.AcquireRequest{Pool: "openai", Cost: &quotadv1.Cost{InputTokens: 10001}}, codes.FailedPrecondition, "tokens 10001 exceeds the capacity 10000"},
		{&quotadv1.AcquireRequest{Pool: "openai", Prompt: &quotadv1.Prompt{Text: "x", Messages: []*quotadv1.Message{{}}}}, codes.InvalidArgument, "both text and messages"},
	} {
		_, err := api.Acquire(ctx, tc.req)
		if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Acquire(%v): %v, want %v containing %q", tc.req, err, tc.code, tc.want)
		}
	}
	_, err := api.Report(ctx, &quotadv1.ReportRequest{Pool: "openai", GrantId: "zz"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `grant_id "zz"`) {
		t.Errorf("Report with a bad grant id: %v", err)
	}
}
