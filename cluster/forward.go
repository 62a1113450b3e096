package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// Forwarding: every node accepts every call; a call for a pool this node does not
// own goes, over gRPC, to the node that does, whose queue is the one queue of the
// pool. A forwarded call carries forwardedKey, and a node that receives one for a
// pool it does not own answers NOT_OWNER instead of serving or forwarding it again:
// no loops, never a second owner. The forwarding node then asks its Router again
// (ownership moves when members come and go) and re-sends, with the caller's
// request id and deadline, until the deadline ends.

// forwardedKey is the metadata key that marks a forwarded call; its value is the
// forwarding node's name.
const forwardedKey = "quotad-forwarded-by"

// ErrNoOwner: the Router knows no live owner for the pool (for now).
var ErrNoOwner = errors.New("no owner for the pool")

// Router says who owns a pool. Implementations are safe for concurrent use.
type Router interface {
	// Owner returns the gRPC address of the pool's owner, and whether that owner
	// is this node. It fails with ErrNoOwner while no live node owns the pool.
	Owner(pool string) (addr string, self bool, err error)
}

// poolRequest is what every QuotaService request has.
type poolRequest interface{ GetPool() string }

// ForwardOptions configure a Forwarder.
type ForwardOptions struct {
	// Self names this node in forwarded calls' metadata.
	Self string
	// Conns are the peer connections; nil: the Forwarder pools its own.
	Conns *PeerConns
	// RetryEvery paces re-sends while ownership settles; zero means 50ms.
	RetryEvery time.Duration
	// WatchEvery paces the check, while a forwarded call waits at an owner, that
	// the pool still has that owner; zero means 200ms.
	WatchEvery time.Duration
	// Settle bounds how long a call waits for ownership to settle (a pool moving,
	// a fenced owner) before it is answered with the last error, so that clients
	// go to another node; zero means 3s. The caller's deadline bounds it too.
	Settle time.Duration
}

// Forwarder routes QuotaService calls to pools' owners. It is safe for concurrent
// use; Close closes its pooled peer connections.
type Forwarder struct {
	router Router
	opts   ForwardOptions

	conns *PeerConns
}

// NewForwarder returns a Forwarder that asks router who owns each pool.
func NewForwarder(router Router, opts ForwardOptions) *Forwarder {
	if opts.RetryEvery <= 0 {
		opts.RetryEvery = 50 * time.Millisecond
	}
	if opts.WatchEvery <= 0 {
		opts.WatchEvery = 200 * time.Millisecond
	}
	if opts.Settle <= 0 {
		opts.Settle = 3 * time.Second
	}
	conns := opts.Conns
	if conns == nil {
		conns = NewPeerConns(nil)
	}
	return &Forwarder{router: router, opts: opts, conns: conns}
}

// Close closes the pooled connections.
func (f *Forwarder) Close() { f.conns.Close() }

// Interceptor serves QuotaService calls for pools this node owns and forwards the
// others. Other services (health, reflection, peers) pass through.
func (f *Forwarder) Interceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		r, ok := req.(poolRequest)
		if !ok || !strings.HasPrefix(info.FullMethod, "/"+quotadv1.QuotaService_ServiceDesc.ServiceName+"/") ||
			info.FullMethod == quotadv1.QuotaService_CountTokens_FullMethodName {
			return handler(ctx, req)
		}
		forwarded := isForwarded(ctx)
		var settle <-chan time.Time // armed at the first retry: most calls need none
		var last error
		for {
			addr, self, err := f.router.Owner(r.GetPool())
			switch {
			case err == nil && self:
				resp, err := handler(ctx, req)
				if forwarded || !retryable(err) {
					return resp, err
				}
				last = err // the pool is still moving here, or this node is fenced
			case forwarded:
				return nil, notOwner(r.GetPool(), err)
			case err == nil:
				resp, err := f.forwardWhileOwner(ctx, addr, r.GetPool(), info.FullMethod, req)
				if !retryable(err) {
					return resp, err
				}
				last = err
			default:
				last = noOwner(fmt.Sprintf("pool %q: %v", r.GetPool(), err))
			}
			// No owner yet, or the owner moved, died or is fenced: ask again shortly.
			if settle == nil {
				t := time.NewTimer(f.opts.Settle)
				defer t.Stop()
				settle = t.C
			}
			select {
			case <-ctx.Done():
				return nil, noOwner(fmt.Sprintf("pool %q: no reachable owner before the deadline: %v", r.GetPool(), ctx.Err()))
			case <-settle:
				return nil, last
			case <-time.After(f.opts.RetryEvery):
			}
		}
	}
}

func isForwarded(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(forwardedKey)) > 0
}

func notOwner(pool string, cause error) error {
	msg := fmt.Sprintf("this node does not own pool %q", pool)
	if cause != nil {
		msg += ": " + cause.Error()
	}
	return quotadv1.ErrorReason_NOT_OWNER.Error(codes.Aborted, msg)
}

// noOwner answers a call whose pool has no reachable owner: retryable, on this
// node or another.
func noOwner(msg string) error { return quotadv1.ErrorReason_NO_OWNER.Error(codes.Unavailable, msg) }

// IsNotOwner reports whether err is a NOT_OWNER answer.
func IsNotOwner(err error) bool { return quotadv1.ReasonOf(err) == quotadv1.ErrorReason_NOT_OWNER }

// retryable: the call did not reach a serving owner, so it may go again (a
// re-sent Acquire keeps its request id, so it is never granted twice).
func retryable(err error) bool {
	return err != nil && (IsNotOwner(err) || status.Code(err) == codes.Unavailable)
}

// forwardWhileOwner forwards one call to the owner at addr, and gives it up, with
// a retryable answer, once the router names another owner for pool. An owner
// that stopped answering without closing its connections (a paused process, a
// host cut off) would otherwise hold every call forwarded to it until the
// callers' deadlines, while its pools are served elsewhere. The call given up is
// not lost twice: an Acquire re-sent keeps its request id, and an old owner that
// answers later is fenced by then.
func (f *Forwarder) forwardWhileOwner(ctx context.Context, addr, pool, method string, req any) (any, error) {
	attempt, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &ownerWatch{f: f, addr: addr, pool: pool, cancel: cancel}
	w.mu.Lock()
	w.timer = time.AfterFunc(f.opts.WatchEvery, w.check) // a timer, not a goroutine, per call
	w.mu.Unlock()
	resp, err := f.forward(attempt, addr, method, req)
	moved := w.stop()
	if err != nil && moved && ctx.Err() == nil {
		return nil, noOwner(fmt.Sprintf("pool %q: owner %s replaced while the call waited there: %v", pool, addr, err))
	}
	return resp, err
}

// ownerWatch checks, every WatchEvery while a forwarded call waits, that its
// pool's owner is still the node the call went to.
type ownerWatch struct {
	f      *Forwarder
	addr   string
	pool   string
	cancel context.CancelFunc

	mu      sync.Mutex // guards everything below
	timer   *time.Timer
	stopped bool
	moved   bool
}

func (w *ownerWatch) check() {
	now, self, err := w.f.router.Owner(w.pool)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	if err == nil && (self || now != w.addr) {
		w.moved = true
		w.cancel()
		return
	}
	w.timer.Reset(w.f.opts.WatchEvery)
}

// stop ends the watch and reports whether the owner moved.
func (w *ownerWatch) stop() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	w.timer.Stop()
	return w.moved
}

// forward sends one call to the owner at addr, keeping the caller's deadline.
func (f *Forwarder) forward(ctx context.Context, addr, method string, req any) (any, error) {
	conn, err := f.conns.Get(addr)
	if err != nil {
		return nil, noOwner(fmt.Sprintf("connect to owner %s: %v", addr, err))
	}
	out := metadata.AppendToOutgoingContext(ctx, forwardedKey, f.opts.Self)
	resp := newResponse(method)
	if resp == nil {
		return nil, status.Errorf(codes.Unimplemented, "%s cannot be forwarded", method)
	}
	if err := conn.Invoke(out, method, req, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

func newResponse(method string) any {
	switch method {
	case quotadv1.QuotaService_Acquire_FullMethodName:
		return new(quotadv1.AcquireResponse)
	case quotadv1.QuotaService_Report_FullMethodName:
		return new(quotadv1.ReportResponse)
	case quotadv1.QuotaService_Renew_FullMethodName:
		return new(quotadv1.RenewResponse)
	case quotadv1.QuotaService_GetPool_FullMethodName:
		return new(quotadv1.PoolStatus)
	}
	return nil
}
