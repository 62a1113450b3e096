package quotad_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	quotad "github.com/quotad/quotad/clients/go"
	"github.com/quotad/quotad/internal/testnode"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

const reasonPools = `pools:
  - name: tiny
    limits:
      - {resource: requests, amount: 1, per: hour, initial: full}
      - {resource: tokens, amount: 100, per: hour, initial: full}
    max_waiters: 2
  - name: spent
    provider: openai
    limits:
      - {resource: requests, amount: 100, per: minute, initial: full}
  - name: doomed
    limits:
      - {resource: requests, amount: 1, per: hour, initial: empty}
`

// TestEveryReasonHasItsError triggers, against a real quotad process, every error
// reason a client can meet on one node, and checks that the client returns that
// reason's own sentinel (and no other's) with the reason kept.
func TestEveryReasonHasItsError(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	file := filepath.Join(t.TempDir(), "quotad.yaml")
	if err := os.WriteFile(file, []byte(reasonPools), 0o600); err != nil {
		t.Fatal(err)
	}
	node := testnode.Start(t, "--config", file, "--config-interval", "50ms", "--metrics-listen", "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	c, err := quotad.Dial(ctx, []string{node.Addr}, quotad.WithUnavailableTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	check := func(name string, err error, want error, reason quotadv1.ErrorReason) {
		t.Helper()
		if !errors.Is(err, want) || quotad.Reason(err) != reason {
			t.Errorf("%s: err = %v (reason %v), want %v with reason %v", name, err, quotad.Reason(err), want, reason)
		}
	}

	_, err = c.Acquire(ctx, "nope", quotad.Cost{Requests: 1})
	check("unknown pool", err, quotad.ErrPoolNotFound, quotadv1.ErrorReason_POOL_NOT_FOUND)

	_, err = c.Acquire(ctx, "tiny", quotad.Cost{Requests: 1, InputTokens: 101})
	check("cost above a bucket", err, quotad.ErrCostTooLarge, quotadv1.ErrorReason_COST_TOO_LARGE)

	g, err := c.Acquire(ctx, "tiny", quotad.Cost{Requests: 1}, quotad.WithRequestID("r-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Report(ctx, quotad.Usage{})
	_, err = c.Acquire(ctx, "tiny", quotad.Cost{Requests: 1, InputTokens: 5}, quotad.WithRequestID("r-1"))
	check("request id reused", err, quotad.ErrRequestIDReused, quotadv1.ErrorReason_REQUEST_ID_REUSED)

	// The bucket is spent for an hour: one waiter (no deadline: it would be
	// refused at once by a wait longer than its deadline) and another fill the
	// queue (max_waiters 2), and
	// the next call is refused.
	waitCtx, stopWaiting := context.WithCancel(context.Background())
	waiting := make(chan error, 2)
	go func() {
		_, err := c.Acquire(waitCtx, "tiny", quotad.Cost{Requests: 1})
		waiting <- err
	}()
	go func() {
		_, err := c.Acquire(waitCtx, "tiny", quotad.Cost{Requests: 1})
		waiting <- err
	}()
	waitFor(t, func() bool { return queueDepth(ctx, t, node.Addr, "tiny") == 2 })
	_, err = c.Acquire(waitCtx, "tiny", quotad.Cost{Requests: 1})
	check("queue full", err, quotad.ErrQueueFull, quotadv1.ErrorReason_QUEUE_FULL)
	stopWaiting()
	<-waiting
	<-waiting

	s, err := c.Acquire(ctx, "spent", quotad.Cost{Requests: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Report(ctx, quotad.Usage{}, quotad.OutcomeFailed, quotad.WithProviderError("insufficient_quota")); err != nil {
		t.Fatal(err)
	}
	_, err = c.Acquire(ctx, "spent", quotad.Cost{Requests: 1})
	check("provider quota spent", err, quotad.ErrQuotaExhausted, quotadv1.ErrorReason_QUOTA_EXHAUSTED)

	// A call waits in "doomed" (empty for an hour) while the pool is removed.
	removed := make(chan error, 1)
	go func() {
		_, err := c.Acquire(context.Background(), "doomed", quotad.Cost{Requests: 1})
		removed <- err
	}()
	waitFor(t, func() bool { return queueDepth(ctx, t, node.Addr, "doomed") == 1 })
	if err := os.WriteFile(file, []byte(strings.Split(reasonPools, "  - name: doomed")[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	check("pool removed while waiting", <-removed, quotad.ErrPoolRemoved, quotadv1.ErrorReason_POOL_REMOVED)

	// SIGTERM answers waiters UNAVAILABLE with SHUTTING_DOWN (seen here on the
	// wire); the client, with no other node to retry on, gives up unavailable.
	conn, err := grpc.NewClient(node.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw := make(chan error, 1)
	go func() {
		_, err := quotadv1.NewQuotaServiceClient(conn).Acquire(context.Background(), &quotadv1.AcquireRequest{Pool: "tiny"})
		raw <- err
	}()
	stopped := make(chan error, 1)
	go func() {
		_, err := c.Acquire(context.Background(), "tiny", quotad.Cost{Requests: 1})
		stopped <- err
	}()
	waitFor(t, func() bool { return queueDepth(ctx, t, node.Addr, "tiny") == 2 })
	node.Stop(t, 5*time.Second)
	if err := <-raw; status.Code(err) != codes.Unavailable || quotadv1.ReasonOf(err) != quotadv1.ErrorReason_SHUTTING_DOWN {
		t.Errorf("a waiter at SIGTERM: %v, want UNAVAILABLE with reason SHUTTING_DOWN", err)
	}
	if err := <-stopped; !errors.Is(err, quotad.ErrUnavailable) {
		t.Errorf("the client's waiter at SIGTERM: %v, want ErrUnavailable", err)
	}
}

// waitFor polls cond every 10ms for up to 10s: the events it waits for (a waiter
// queued in another process) have no notification to wait on.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
	}
}

// queueDepth is how many calls wait in pool at the node at addr.
func queueDepth(ctx context.Context, t *testing.T, addr, pool string) int64 {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st, err := quotadv1.NewQuotaServiceClient(conn).GetPool(ctx, &quotadv1.GetPoolRequest{Pool: pool})
	if err != nil {
		return -1
	}
	return st.GetWaiters()
}
