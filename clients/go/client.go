package quotad

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// Retry pacing when every address has failed in a row: the pause before the next
// round starts at minRetryBackoff and doubles up to maxRetryBackoff.
const (
	minRetryBackoff = 50 * time.Millisecond
	maxRetryBackoff = time.Second
)

// Client is a connection to a quotad cluster. It is safe for concurrent use by
// multiple goroutines. Close it when done.
type Client struct {
	cfg   dialConfig
	nodes []node
	local *localLimiter // nil unless WithFailOpen

	// cur is the index of the node calls go to first; a call that finds it
	// unavailable moves it on.
	cur atomic.Uint32
	// down is set when a call ran out of its unavailable timeout, and cleared when
	// a node answers: while set, calls try each address once only.
	down atomic.Bool

	// ctx is canceled by Close; lease renewals run under it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // lease renewals
	mu     sync.Mutex     // guards closed, and wg.Add against Close
	closed bool
}

type node struct {
	addr string
	conn *grpc.ClientConn
	api  quotadv1.QuotaServiceClient
}

// Dial returns a Client for the quotad nodes at addrs ("host:port", or any gRPC
// target), tried in the given order. Dial does not wait for a connection: each
// node is connected on first use, so Dial succeeds while quotad is down. ctx only
// bounds Dial itself. Dial fails with ErrInvalid for no addresses or bad options.
func Dial(ctx context.Context, addrs []string, opts ...Option) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("quotad: dial: %w", err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%w: dial: no address", ErrInvalid)
	}
	cfg := defaultDialConfig()
	for _, opt := range opts {
		opt(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	grpcOpts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(cfg.creds),
		// Reconnect to a node that comes back within seconds, not minutes.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	}, cfg.grpcOpts...)

	c := &Client{cfg: cfg}
	for _, addr := range addrs {
		conn, err := grpc.NewClient(addr, grpcOpts...)
		if err != nil {
			c.closeConns()
			return nil, fmt.Errorf("%w: dial %q: %w", ErrInvalid, addr, err)
		}
		c.nodes = append(c.nodes, node{addr: addr, conn: conn, api: quotadv1.NewQuotaServiceClient(conn)})
	}
	if cfg.failOpen {
		c.local = newLocalLimiter(cfg.failOpenRate, cfg.failOpenBurst)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Close stops the lease renewals of open grants and closes the connections.
// Calls made after Close fail with ErrClosed. Close is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return c.closeConns()
}

func (c *Client) closeConns() error {
	var errs []error
	for _, n := range c.nodes {
		errs = append(errs, n.conn.Close())
	}
	return errors.Join(errs...)
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Cost is what one provider call takes. Requests below 1 count as 1: every call
// is a request. OutputTokens is the reservation for the call's output (its
// max_tokens).
type Cost struct {
	Requests     int64
	InputTokens  int64
	OutputTokens int64
}

// Acquire blocks until quotad grants cost in pool, and returns the grant, whose
// lease the client then renews until it is Reported. With WithPrompt, quotad
// counts the input tokens and reserves the output itself (see WithPrompt). It returns a
// *NotGrantedError when WithMaxWait says no, the context's error (wrapped) when
// ctx ends first, and otherwise an error wrapping ErrPoolNotFound,
// ErrCostTooLarge, ErrQueueFull, ErrInvalid or ErrUnavailable.
//
// When a node is unavailable, Acquire retries on the next node with the same
// request id, so quotad charges the call once. When no node has answered for the
// unavailable timeout (WithUnavailableTimeout), it fails with ErrUnavailable, or,
// with WithFailOpen, takes the grant from the local limiter (Grant.Local).
func (c *Client) Acquire(ctx context.Context, pool string, cost Cost, opts ...AcquireOption) (*Grant, error) {
	var ac acquireConfig
	for _, opt := range opts {
		opt(&ac)
	}
	switch {
	case pool == "":
		return nil, fmt.Errorf("%w: acquire: empty pool name", ErrInvalid)
	case cost.Requests < 0 || cost.InputTokens < 0 || cost.OutputTokens < 0:
		return nil, fmt.Errorf("%w: acquire %q: negative cost %+v", ErrInvalid, pool, cost)
	case ac.hasWait && ac.maxWait < 0:
		return nil, fmt.Errorf("%w: acquire %q: negative max wait %v", ErrInvalid, pool, ac.maxWait)
	case ac.hasMaxOutput && ac.maxOutput < 0, ac.completions < 0:
		return nil, fmt.Errorf("%w: acquire %q: negative max output tokens %d or completions %d", ErrInvalid, pool, ac.maxOutput, ac.completions)
	case c.isClosed():
		return nil, fmt.Errorf("%w: acquire %q", ErrClosed, pool)
	}
	if ac.requestID == "" {
		ac.requestID = newRequestID()
	}
	start := time.Now()
	req := &quotadv1.AcquireRequest{
		Pool:      pool,
		Tenant:    ac.tenant,
		Cost:      &quotadv1.Cost{Requests: cost.Requests, InputTokens: cost.InputTokens, OutputTokens: cost.OutputTokens},
		RequestId: ac.requestID,
	}
	ac.applyPrompt(req)
	var resp *quotadv1.AcquireResponse
	err := c.call(ctx, func(ctx context.Context, api quotadv1.QuotaServiceClient) error {
		if ac.hasWait {
			// The wait budget is for the whole Acquire, retries included.
			req.MaxWait = durationpb.New(max(0, ac.maxWait-time.Since(start)))
		}
		var err error
		resp, err = api.Acquire(ctx, req)
		return err
	})
	if errors.Is(err, ErrUnavailable) && c.local != nil && ctx.Err() == nil {
		return c.acquireLocal(ctx, pool, cost, ac, start)
	}
	if err != nil {
		return nil, c.wrapErr(ctx, "acquire", pool, err)
	}
	if !resp.GetGranted() {
		return nil, &NotGrantedError{Pool: pool, RetryAfter: resp.GetRetryAfter().AsDuration()}
	}
	g := &Grant{
		ID:         resp.GetGrantId(),
		Pool:       pool,
		Cost:       costFromProto(resp.GetCost()),
		Waited:     resp.GetWaited().AsDuration(),
		LeaseTTL:   resp.GetLeaseTtl().AsDuration(),
		Sequence:   resp.GetSequence(),
		Shadow:     resp.GetShadow(),
		ShadowWait: resp.GetShadowWait().AsDuration(),
		c:          c,
	}
	g.startRenewal()
	return g, nil
}

// call runs rpc against the current node. When the node is unavailable it moves
// on to the next address at once; after a round in which every address failed, it
// pauses (bounded backoff) and starts another round, until rpc gets an answer,
// ctx ends, or no node has answered for the unavailable timeout. It returns rpc's
// error as is, or an error wrapping ErrUnavailable and the last node's error.
func (c *Client) call(ctx context.Context, rpc func(context.Context, quotadv1.QuotaServiceClient) error) error {
	n := len(c.nodes)
	i := int(c.cur.Load()) % n
	giveUp := time.Now().Add(c.cfg.unavailableTimeout)
	pause := minRetryBackoff
	var last error
	for attempt := 1; ; attempt++ {
		err := rpc(ctx, c.nodes[i].api)
		switch {
		case err == nil:
			c.down.Store(false)
			return nil
		case ctx.Err() != nil:
			if last != nil { // ended while retrying
				return fmt.Errorf("%w: %w (last error: %w)", ErrUnavailable, ctx.Err(), last)
			}
			return err
		case c.isClosed():
			return err
		case status.Code(err) != codes.Unavailable:
			c.down.Store(false) // a node answered
			return err
		}
		last = fmt.Errorf("node %s: %w", c.nodes[i].addr, err)
		next := (i + 1) % n
		c.cur.CompareAndSwap(uint32(i), uint32(next))
		i = next
		if attempt%n != 0 {
			continue
		}
		if c.down.Load() || !time.Now().Before(giveUp) {
			c.down.Store(true)
			return fmt.Errorf("%w: %w", ErrUnavailable, last)
		}
		t := time.NewTimer(min(pause, time.Until(giveUp)))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %w (last error: %w)", ErrUnavailable, ctx.Err(), last)
		case <-t.C:
		}
		pause = min(2*pause, maxRetryBackoff)
	}
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

func costFromProto(p *quotadv1.Cost) Cost {
	return Cost{Requests: p.GetRequests(), InputTokens: p.GetInputTokens(), OutputTokens: p.GetOutputTokens()}
}
