package server

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// FuzzAcquireReport drives a node over gRPC with arbitrary Acquire, Report and
// Renew fields: no call may panic or fail with an internal error, and every pool
// stays consistent (nothing negative in flight or unsettled, no level above the
// capacity).
func FuzzAcquireReport(f *testing.F) {
	f.Add(uint8(0), "", "", int64(1), int64(100), int64(10), int64(-1), "", int64(90), int64(5), int32(1), int64(0), "x-ratelimit-remaining-tokens", "10", "", int64(0))
	f.Add(uint8(1), "t", "r1", int64(0), int64(20000), int64(0), int64(0), "zz", int64(-1), int64(0), int32(4), int64(1e9), "retry-after", "1", "insufficient_quota", int64(1e9))
	f.Add(uint8(2), "a", "r1", int64(3), int64(1e15), int64(1e15), int64(1e18), "1-1", int64(1e15), int64(1e15), int32(9), int64(-1), "anthropic-ratelimit-tokens-limit", "1", "billing_error", int64(60e9))
	f.Add(uint8(0), "b", "r2", int64(1), int64(9000), int64(900), int64(1e6), "", int64(0), int64(0), int32(3), int64(3e9), "x-ratelimit-limit-tokens", "500", "", int64(1e6))
	api, srv, fc := startTestServer(f)
	pools := []string{"openai", "anthropic", "nope"}
	var grants []string
	f.Fuzz(func(t *testing.T, which uint8, tenant, requestID string, requests, input, output, maxWait int64,
		grantID string, usageIn, usageOut int64, outcome int32, retryAfter int64, hk, hv, providerError string, advance int64) {
		// A gRPC client cannot send strings that are not UTF-8 (proto3 refuses to
		// marshal them); the server's own UTF-8 checks are reached through the
		// replacement character's neighbours.
		for _, s := range []*string{&tenant, &requestID, &grantID, &hk, &hv, &providerError} {
			*s = strings.ToValidUTF8(*s, "\uFFFD")
		}
		// The fuzzing engine does not notice an input that hangs: fail it here.
		watchdog := time.AfterFunc(10*time.Second, func() {
			buf := make([]byte, 1<<20)
			panic(fmt.Sprintf("input hung:\n%s", buf[:runtime.Stack(buf, true)]))
		})
		defer watchdog.Stop()
		pool := pools[int(which)%len(pools)]
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		check := func(op string, err error) {
			t.Helper()
			switch status.Code(err) {
			case codes.Internal, codes.Unknown:
				t.Fatalf("%s: %v", op, err)
			}
		}
		acq := &quotadv1.AcquireRequest{Pool: pool, Tenant: tenant, RequestId: requestID,
			Cost: &quotadv1.Cost{Requests: requests, InputTokens: input, OutputTokens: output}}
		if maxWait >= 0 || which&0x80 != 0 {
			acq.MaxWait = durationpb.New(time.Duration(maxWait))
		}
		g, err := api.Acquire(ctx, acq)
		check("Acquire", err)
		if g.GetGranted() {
			grants = append(grants, g.GetGrantId())
		}
		if grantID == "" && len(grants) > 0 {
			grantID = grants[int(which)%len(grants)]
		}
		rep := &quotadv1.ReportRequest{Pool: pool, GrantId: grantID,
			Usage:   &quotadv1.Usage{InputTokens: usageIn, OutputTokens: usageOut},
			Outcome: quotadv1.Outcome(outcome), Headers: map[string]string{hk: hv}, ProviderError: providerError}
		if retryAfter >= 0 || which&0x40 != 0 {
			rep.RetryAfter = durationpb.New(time.Duration(retryAfter))
		}
		_, err = api.Report(ctx, rep)
		check("Report", err)
		_, err = api.Renew(ctx, &quotadv1.RenewRequest{Pool: pool, GrantId: grantID})
		check("Renew", err)
		if advance > 0 {
			fc.Advance(time.Duration(advance % int64(10*time.Minute)))
		}
		for _, name := range srv.lim.Pools() {
			st, err := api.GetPool(context.Background(), &quotadv1.GetPoolRequest{Pool: name})
			if err != nil {
				t.Fatalf("GetPool(%s): %v", name, err)
			}
			u := st.GetUnsettled()
			if st.GetInFlight() < 0 || st.GetWaiters() < 0 || u.GetRequests() < 0 || u.GetInputTokens() < 0 || u.GetOutputTokens() < 0 {
				t.Fatalf("pool %s: negative counts: %v", name, st)
			}
			for _, l := range st.GetLimits() {
				if l.GetLevel() > l.GetCapacity() {
					t.Fatalf("pool %s: level above capacity: %v", name, l)
				}
			}
		}
	})
}
