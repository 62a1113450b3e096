package quotad

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// fakeServer is a QuotaServiceServer for tests: it records every call and
// answers with the functions a test sets, or with an immediate grant.
type fakeServer struct {
	quotadv1.UnimplementedQuotaServiceServer

	acquireFn func(context.Context, *quotadv1.AcquireRequest) (*quotadv1.AcquireResponse, error)
	reportFn  func(context.Context, *quotadv1.ReportRequest) (*quotadv1.ReportResponse, error)
	renewFn   func(context.Context, *quotadv1.RenewRequest) (*quotadv1.RenewResponse, error)
	leaseTTL  time.Duration // in default grants; 0 means 60 s

	mu       sync.Mutex
	acquires []*quotadv1.AcquireRequest
	reports  []*quotadv1.ReportRequest
	renews   []*quotadv1.RenewRequest

	renewed  chan *quotadv1.RenewRequest  // every Renew, if not nil (buffered)
	reported chan *quotadv1.ReportRequest // every Report, if not nil (buffered)
}

func newFakeServer() *fakeServer {
	return &fakeServer{
		renewed:  make(chan *quotadv1.RenewRequest, 100),
		reported: make(chan *quotadv1.ReportRequest, 100),
	}
}

func (s *fakeServer) Acquire(ctx context.Context, req *quotadv1.AcquireRequest) (*quotadv1.AcquireResponse, error) {
	s.mu.Lock()
	s.acquires = append(s.acquires, req)
	fn := s.acquireFn
	s.mu.Unlock()
	if fn != nil {
		return fn(ctx, req)
	}
	ttl := s.leaseTTL
	if ttl == 0 {
		ttl = time.Minute
	}
	return &quotadv1.AcquireResponse{
		Granted:  true,
		GrantId:  "g-" + req.GetRequestId(),
		Cost:     req.GetCost(),
		Waited:   durationpb.New(0),
		LeaseTtl: durationpb.New(ttl),
		Sequence: 7,
	}, nil
}

func (s *fakeServer) Report(ctx context.Context, req *quotadv1.ReportRequest) (*quotadv1.ReportResponse, error) {
	s.mu.Lock()
	s.reports = append(s.reports, req)
	fn := s.reportFn
	s.mu.Unlock()
	select {
	case s.reported <- req:
	default:
	}
	if fn != nil {
		return fn(ctx, req)
	}
	return &quotadv1.ReportResponse{Settlement: quotadv1.Settlement_SETTLEMENT_SETTLED}, nil
}

func (s *fakeServer) Renew(ctx context.Context, req *quotadv1.RenewRequest) (*quotadv1.RenewResponse, error) {
	s.mu.Lock()
	s.renews = append(s.renews, req)
	fn := s.renewFn
	ttl := s.leaseTTL
	s.mu.Unlock()
	select {
	case s.renewed <- req:
	default:
	}
	if fn != nil {
		return fn(ctx, req)
	}
	return &quotadv1.RenewResponse{LeaseTtl: durationpb.New(ttl)}, nil
}

func (s *fakeServer) counts() (acquires, reports, renews int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acquires), len(s.reports), len(s.renews)
}

func (s *fakeServer) acquireRequests() []*quotadv1.AcquireRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*quotadv1.AcquireRequest(nil), s.acquires...)
}

// serve runs srv on a loopback port until the test ends, and returns its address.
func serve(t *testing.T, srv quotadv1.QuotaServiceServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	quotadv1.RegisterQuotaServiceServer(s, srv)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

// deadAddr returns a loopback address on which nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// dial returns a Client for addrs that the test closes when it ends.
func dial(t *testing.T, addrs []string, opts ...Option) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addrs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}
