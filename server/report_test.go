package server

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// A Report refused as invalid changes nothing, its provider headers and outcome
// included.
func TestRefusedReportAppliesNoProviderFeedback(t *testing.T) {
	api, _ := startServer(t)
	ctx := context.Background()
	g, err := api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "anthropic", Cost: &quotadv1.Cost{InputTokens: 100}})
	if err != nil {
		t.Fatal(err)
	}
	before, err := api.GetPool(ctx, &quotadv1.GetPoolRequest{Pool: "anthropic"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = api.Report(ctx, &quotadv1.ReportRequest{Pool: "anthropic", GrantId: g.GetGrantId(),
		Usage:   &quotadv1.Usage{InputTokens: 20000},   // more than any input bucket holds
		Outcome: quotadv1.Outcome_OUTCOME_RATE_LIMITED, // without retry-after: a spent quota
		Headers: map[string]string{"anthropic-ratelimit-input-tokens-limit": "5000", "anthropic-ratelimit-input-tokens-remaining": "0"}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Report with usage over the capacity: %v, want INVALID_ARGUMENT", err)
	}
	after, err := api.GetPool(ctx, &quotadv1.GetPoolRequest{Pool: "anthropic"})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(before, after) {
		t.Fatalf("a refused Report changed the pool:\nbefore %v\nafter  %v", before, after)
	}
}

// A second Report of the same grant changes nothing, whatever headers it carries.
func TestDuplicateReportAppliesNoProviderFeedback(t *testing.T) {
	api, _ := startServer(t)
	ctx := context.Background()
	g, err := api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "openai", Cost: &quotadv1.Cost{InputTokens: 100}})
	if err != nil {
		t.Fatal(err)
	}
	r := &quotadv1.ReportRequest{Pool: "openai", GrantId: g.GetGrantId(), Usage: &quotadv1.Usage{InputTokens: 100}}
	if _, err := api.Report(ctx, r); err != nil {
		t.Fatal(err)
	}
	before, err := api.GetPool(ctx, &quotadv1.GetPoolRequest{Pool: "openai"})
	if err != nil {
		t.Fatal(err)
	}
	r.Headers = map[string]string{"x-ratelimit-limit-tokens": "5000", "x-ratelimit-remaining-tokens": "0"}
	r.ProviderError = "insufficient_quota"
	res, err := api.Report(ctx, r)
	if err != nil || res.GetSettlement() != quotadv1.Settlement_SETTLEMENT_DUPLICATE {
		t.Fatalf("second Report: %v %v, want DUPLICATE", res, err)
	}
	after, err := api.GetPool(ctx, &quotadv1.GetPoolRequest{Pool: "openai"})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(before, after) {
		t.Fatalf("a duplicate Report changed the pool:\nbefore %v\nafter  %v", before, after)
	}
}

// Report strings and durations are bounded like Acquire's, and refused naming the
// field.
func TestReportBounds(t *testing.T) {
	api, _ := startServer(t)
	ctx := context.Background()
	g, err := api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "openai"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		req  *quotadv1.ReportRequest
		want string
	}{
		{&quotadv1.ReportRequest{Pool: "openai", GrantId: g.GetGrantId(), ProviderError: strings.Repeat("e", 100000)}, "provider_error is 100000 bytes"},
		{&quotadv1.ReportRequest{Pool: "openai", GrantId: g.GetGrantId(), Outcome: quotadv1.Outcome_OUTCOME_RATE_LIMITED,
			RetryAfter: durationpb.New(100 * 365 * 24 * time.Hour)}, "retry_after 876000h"},
	} {
		_, err := api.Report(ctx, tc.req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Report: %v, want INVALID_ARGUMENT containing %q", err, tc.want)
		}
	}
	st, err := api.GetPool(ctx, &quotadv1.GetPoolRequest{Pool: "openai"})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetQuotaExhausted() != "" || st.GetPausedFor().AsDuration() != 0 || st.GetInFlight() != 1 {
		t.Fatalf("refused Reports changed the pool: %v", st)
	}
}

// Pool labels come from the configuration, never from a request: a refusal of a
// pool the node does not have counts under "_unknown", whatever the reason.
func TestRefusalsOfUnknownPoolsDoNotGrowTheMetrics(t *testing.T) {
	api, srv, _ := startTestServer(t)
	ctx := context.Background()
	srv.lim.Close() // shutting down: refusals come before any pool lookup
	for _, name := range []string{"openai", "bogus-1", "bogus-2"} {
		if _, err := api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: name}); status.Code(err) != codes.Unavailable {
			t.Fatalf("Acquire(%s) while closed: %v, want UNAVAILABLE", name, err)
		}
	}
	families, err := srv.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "pool" && strings.HasPrefix(l.GetValue(), "bogus") {
					t.Errorf("%s has a series for the requested pool %q", f.GetName(), l.GetValue())
				}
			}
		}
	}
}

// Every usage field is checked, cache fields included: a negative cache write must
// not cut the settled input and refund what the call used.
func TestReportRefusesBadCacheUsage(t *testing.T) {
	api, _ := startServer(t)
	ctx := context.Background()
	g, err := api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "anthropic", Cost: &quotadv1.Cost{InputTokens: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		usage *quotadv1.Usage
		want  string
	}{
		{&quotadv1.Usage{InputTokens: 1000, CacheCreationInputTokens: -900}, "usage.cache_creation_input_tokens -900"},
		{&quotadv1.Usage{InputTokens: 1000, CacheReadInputTokens: -1}, "usage.cache_read_input_tokens -1"},
		{&quotadv1.Usage{InputTokens: 1, CacheCreationInputTokens: math.MaxInt64}, "usage.cache_creation_input_tokens 9223372036854775807"},
	} {
		_, err := api.Report(ctx, &quotadv1.ReportRequest{Pool: "anthropic", GrantId: g.GetGrantId(), Usage: tc.usage})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Report(%v): %v, want INVALID_ARGUMENT containing %q", tc.usage, err, tc.want)
		}
	}
	st, err := api.GetPool(ctx, &quotadv1.GetPoolRequest{Pool: "anthropic"})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetInFlight() != 1 || st.GetLimits()[0].GetLevel() != 9000 {
		t.Fatalf("refused Reports changed the pool: %v", st)
	}
}

// With both a max_wait and a deadline, the shorter bounds the wait: a call that
// cannot be granted before its deadline is refused at once with its retry_after,
// not held until the deadline fails it.
func TestDeadlineShorterThanMaxWaitRefusesAtOnce(t *testing.T) {
	api, _ := startServer(t)
	ctx := context.Background()
	if _, err := api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "openai", Cost: &quotadv1.Cost{InputTokens: 10000}}); err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r, err := api.Acquire(dctx, &quotadv1.AcquireRequest{Pool: "openai", Cost: &quotadv1.Cost{InputTokens: 5000},
		MaxWait: durationpb.New(time.Hour)})
	if err != nil || r.GetGranted() || r.GetRetryAfter().AsDuration() != 30*time.Second {
		t.Fatalf("Acquire = %v, %v; want a refusal at once with retry_after 30s", r, err)
	}
}
