package cluster

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/quotad/quotad/internal/clock"
	"github.com/quotad/quotad/internal/configtest"
	"github.com/quotad/quotad/limiter"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
	"github.com/quotad/quotad/server"
)

// owners is the ownership every test node's router shares.
type owners struct {
	mu  sync.Mutex
	own map[string]string
}

type testNode struct {
	addr string
	lim  *limiter.Limiter
	gs   *grpc.Server
	api  quotadv1.QuotaServiceClient
}

// startForwardingNode serves a QuotaService with one pool "p" (1 request per
// second, burst 1, starting full) behind a Forwarder whose router reads shared.
func startForwardingNode(t *testing.T, shared *owners) *testNode {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{addr: lis.Addr().String(), lim: limiter.New(clock.Real())}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := server.New(n.lim, server.NewMetrics(n.lim, 10), log)
	configtest.Apply(t, srv, "pools:\n  - name: p\n    limits: [{resource: requests, amount: 1, per: 1s, initial: full}]\n")
	router := routerFunc(func(pool string) (string, bool, error) {
		shared.mu.Lock()
		defer shared.mu.Unlock()
		addr := shared.own[pool]
		if addr == "" {
			return "", false, ErrNoOwner
		}
		return addr, addr == n.addr, nil
	})
	fwd := NewForwarder(router, ForwardOptions{Self: n.addr, RetryEvery: 10 * time.Millisecond})
	t.Cleanup(fwd.Close)
	n.gs = grpc.NewServer(grpc.UnaryInterceptor(fwd.Interceptor()))
	quotadv1.RegisterQuotaServiceServer(n.gs, srv)
	go n.gs.Serve(lis)
	t.Cleanup(n.gs.Stop)
	conn, err := grpc.NewClient(n.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n.api = quotadv1.NewQuotaServiceClient(conn)
	return n
}

type routerFunc func(pool string) (string, bool, error)

func (f routerFunc) Owner(pool string) (string, bool, error) { return f(pool) }

func inFlight(t *testing.T, n *testNode) int64 {
	t.Helper()
	st, err := n.lim.Status("p")
	if err != nil {
		t.Fatal(err)
	}
	return st.InFlight
}

func TestForwardToOwner(t *testing.T) {
	shared := &owners{own: map[string]string{}}
	a, b := startForwardingNode(t, shared), startForwardingNode(t, shared)
	shared.own["p"] = b.addr
	ctx := context.Background()
	g, err := a.api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "p", RequestId: "r1"})
	if err != nil || !g.GetGranted() {
		t.Fatalf("acquire through a non-owner: %v %v", g, err)
	}
	if inFlight(t, a) != 0 || inFlight(t, b) != 1 {
		t.Errorf("in flight a=%d b=%d, want the grant made by the owner b", inFlight(t, a), inFlight(t, b))
	}
	// Report, Renew and GetPool go to the owner too.
	if _, err := a.api.Renew(ctx, &quotadv1.RenewRequest{Pool: "p", GrantId: g.GetGrantId()}); err != nil {
		t.Errorf("renew through a non-owner: %v", err)
	}
	if _, err := a.api.Report(ctx, &quotadv1.ReportRequest{Pool: "p", GrantId: g.GetGrantId()}); err != nil {
		t.Errorf("report through a non-owner: %v", err)
	}
	if st, err := a.api.GetPool(ctx, &quotadv1.GetPoolRequest{Pool: "p"}); err != nil || st.GetNextSequence() != 2 {
		t.Errorf("GetPool through a non-owner: %v %v, want the owner's status", st, err)
	}
}

func TestForwardedCallToNonOwnerIsRefused(t *testing.T) {
	shared := &owners{own: map[string]string{}}
	a, b := startForwardingNode(t, shared), startForwardingNode(t, shared)
	shared.own["p"] = a.addr
	// A call that b's peer forwarded (as if it believed b owned "p") is answered
	// NOT_OWNER: b neither serves it nor forwards it again.
	ctx := metadata.AppendToOutgoingContext(context.Background(), forwardedKey, "someone")
	_, err := b.api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "p"})
	if !IsNotOwner(err) || status.Code(err) != codes.Aborted {
		t.Fatalf("forwarded call at a non-owner: %v, want NOT_OWNER", err)
	}
	if inFlight(t, a) != 0 || inFlight(t, b) != 0 {
		t.Errorf("the refused call was served somewhere: a=%d b=%d", inFlight(t, a), inFlight(t, b))
	}
}

// TestWaitingCallFollowsANewOwner: the owner stops while a forwarded Acquire waits
// there; the forwarding node re-sends it, with its request id, to the new owner.
func TestWaitingCallFollowsANewOwner(t *testing.T) {
	shared := &owners{own: map[string]string{}}
	a, b, c := startForwardingNode(t, shared), startForwardingNode(t, shared), startForwardingNode(t, shared)
	shared.own["p"] = b.addr
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range []*testNode{b, c} { // empty both buckets
		if _, err := n.lim.Acquire(ctx, "p", limiter.Request{MaxWait: -1}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan *quotadv1.AcquireResponse, 1)
	go func() {
		g, err := a.api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "p", RequestId: "waiting-1"})
		if err != nil {
			t.Error(err)
		}
		done <- g
	}()
	for {
		st, _ := b.lim.Status("p")
		if st.Waiters == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	shared.mu.Lock()
	shared.own["p"] = c.addr
	shared.mu.Unlock()
	b.lim.Close() // b stops: its waiters are answered UNAVAILABLE
	g := <-done
	if !g.GetGranted() {
		t.Fatalf("re-sent acquire: %v", g)
	}
	if st, _ := c.lim.Status("p"); st.InFlight != 2 {
		t.Errorf("c in flight %d, want its own grant and the re-sent one", st.InFlight)
	}
}

func TestNoOwnerUntilTheDeadline(t *testing.T) {
	a := startForwardingNode(t, &owners{own: map[string]string{}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := a.api.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "p"})
	if c := status.Code(err); c != codes.Unavailable && c != codes.DeadlineExceeded {
		t.Errorf("acquire with no owner: %v, want UNAVAILABLE or DEADLINE_EXCEEDED", err)
	}
}
