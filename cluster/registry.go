// Package cluster coordinates quotad nodes: each node's registration in etcd
// under a lease, the discovery of the registered nodes, and which node owns which
// pool.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultNodesPrefix is where nodes register: one key per node, prefix + node ID,
// whose value is the Node in JSON, attached to the node's lease.
const DefaultNodesPrefix = "/quotad/nodes/"

// Registered is one registered quotad node.
type Registered struct {
	ID   string `json:"id"`
	Addr string `json:"addr"` // gRPC address
}

// RegistryOptions configure a Registration. Zero values take the defaults.
type RegistryOptions struct {
	// Prefix is where nodes register. Default DefaultNodesPrefix.
	Prefix string
	// TTL is the lease's time to live, in whole seconds. Default 10s.
	TTL time.Duration
	// Margin is taken off every expiry estimate, for clock-rate differences
	// between this node and etcd and for scheduling delays. Default TTL/5.
	Margin time.Duration
	// Logger receives registration, loss and renewal messages. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// Registration keeps one node registered in etcd under a lease: it grants the
// lease, puts the node's key with it, renews it every TTL/3, and registers again
// under a new lease when the old one expired. It runs until Close.
//
// Deadline is the fencing bound: a lease renewal is sent at local time t0 and,
// when etcd confirms it with a TTL, the lease cannot expire before t0 + TTL by
// etcd's clock (etcd renewed it after t0). Deadline is that instant, by this
// node's monotonic clock, minus Margin. Until Deadline the node's key is certainly
// in etcd; past it the node must act as if it were not registered, for example
// stop granting what only a registered node may grant. Deadline never moves
// backwards and only moves on a confirmed renewal.
//
// Methods are safe for concurrent use.
type Registration struct {
	cli  *clientv3.Client
	node Registered
	key  string
	opts RegistryOptions

	mu       sync.Mutex // guards deadline
	deadline time.Time

	cancel context.CancelFunc
	done   chan struct{}
}

// Register starts keeping node registered through cli. It returns at once; the
// node counts as registered (Valid) once the first lease is granted and its key
// written, retried until that succeeds. The caller keeps ownership of cli and
// must not close it before Close returns.
func Register(cli *clientv3.Client, node Registered, opts RegistryOptions) *Registration {
	if opts.Prefix == "" {
		opts.Prefix = DefaultNodesPrefix
	}
	if opts.TTL <= 0 {
		opts.TTL = 10 * time.Second
	}
	opts.TTL = max(opts.TTL.Round(time.Second), time.Second)
	if opts.Margin <= 0 {
		opts.Margin = opts.TTL / 5
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Registration{cli: cli, node: node, key: opts.Prefix + node.ID, opts: opts, cancel: cancel, done: make(chan struct{})}
	go r.run(ctx)
	return r
}

// Key returns the node's key in etcd.
func (r *Registration) Key() string { return r.key }

// Deadline returns the instant, by this node's monotonic clock, until which the
// registration certainly holds (see Registration). It is the zero time before the
// first registration.
func (r *Registration) Deadline() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.deadline
}

// Valid reports whether now is before Deadline.
func (r *Registration) Valid() bool { return time.Now().Before(r.Deadline()) }

// Close stops renewing and revokes the lease, so the node's key goes at once
// (when etcd is reachable within a second; otherwise it expires with the lease).
func (r *Registration) Close() {
	r.cancel()
	<-r.done
}

// confirmed moves the deadline after a renewal sent at sent confirmed ttl seconds.
func (r *Registration) confirmed(sent time.Time, ttl int64) {
	d := sent.Add(time.Duration(ttl)*time.Second - r.opts.Margin)
	r.mu.Lock()
	if d.After(r.deadline) {
		r.deadline = d
	}
	r.mu.Unlock()
}

func (r *Registration) run(ctx context.Context) {
	defer close(r.done)
	var lease clientv3.LeaseID
	defer func() {
		if lease != 0 {
			rctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			r.cli.Revoke(rctx, lease)
		}
	}()
	renewEvery := r.opts.TTL / 3
	retryEvery := max(r.opts.TTL/10, 100*time.Millisecond)
	failing := false // a failure was logged since the last success
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		var err error
		if lease == 0 {
			lease, err = r.register(ctx)
		} else if err = r.renew(ctx, lease, renewEvery); errors.Is(err, rpctypes.ErrLeaseNotFound) {
			r.opts.Logger.Warn("node registration expired; registering again", "key", r.key, "lease", fmt.Sprintf("%x", int64(lease)))
			lease = 0
			wait = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !failing {
				r.opts.Logger.Warn("node registration not renewed; retrying", "key", r.key, "valid_for", time.Until(r.Deadline()).Round(time.Millisecond), "err", err)
			}
			failing, wait = true, retryEvery
			continue
		}
		if failing {
			r.opts.Logger.Info("node registration renewed", "key", r.key)
		}
		failing, wait = false, renewEvery
	}
}

// register grants a lease and writes the node's key with it.
func (r *Registration) register(ctx context.Context) (clientv3.LeaseID, error) {
	value, err := json.Marshal(r.node)
	if err != nil {
		return 0, fmt.Errorf("encode node %q: %w", r.node.ID, err)
	}
	rctx, cancel := context.WithTimeout(ctx, r.opts.TTL/3)
	defer cancel()
	sent := time.Now()
	g, err := r.cli.Grant(rctx, int64(r.opts.TTL/time.Second))
	if err != nil {
		return 0, fmt.Errorf("grant a %v lease: %w", r.opts.TTL, err)
	}
	if _, err := r.cli.Put(rctx, r.key, string(value), clientv3.WithLease(g.ID)); err != nil {
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r.cli.Revoke(rctx, g.ID)
		return 0, fmt.Errorf("put %s: %w", r.key, err)
	}
	r.confirmed(sent, g.TTL)
	r.opts.Logger.Info("node registered", "key", r.key, "addr", r.node.Addr, "lease", fmt.Sprintf("%x", int64(g.ID)), "ttl", time.Duration(g.TTL)*time.Second)
	return g.ID, nil
}

// renew sends one keep-alive for lease.
func (r *Registration) renew(ctx context.Context, lease clientv3.LeaseID, timeout time.Duration) error {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sent := time.Now()
	resp, err := r.cli.KeepAliveOnce(rctx, lease)
	if err != nil {
		return fmt.Errorf("renew lease %x of %s: %w", int64(lease), r.key, err)
	}
	r.confirmed(sent, resp.TTL)
	return nil
}
