package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/proto"

	"github.com/quotad/quotad/cluster"
	"github.com/quotad/quotad/internal/clock"
	"github.com/quotad/quotad/limiter"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
	"github.com/quotad/quotad/server"
)

// serve runs one node until ctx ends (SIGTERM), then shuts down in order: stop
// taking calls, answer waiters with UNAVAILABLE so clients retry elsewhere, save
// the pool state, exit.
func serve(ctx context.Context, args []string, stderr io.Writer) int {
	s, err := loadSettings(args, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "quotad serve: %v\n", err)
		return 2
	}
	log, err := newLogger(s, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "quotad serve: %v\n", err)
		return 2
	}
	if err := runNode(ctx, s, log); err != nil {
		log.Error("quotad stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(s Settings, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.LogLevel)); err != nil {
		return nil, fmt.Errorf("log-level %q: %w", s.LogLevel, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch s.LogFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log-format %q: want text or json", s.LogFormat)
}

// node is one running quotad: its engine, its config, and its listeners.
type node struct {
	settings Settings
	log      *slog.Logger
	lim      *limiter.Limiter
	srv      *server.Server
	metrics  *server.Metrics
	health   *health.Server
	etcd     *clientv3.Client // with --etcd-endpoints; closed after the config source stops
	cluster  *cluster.Node    // with --gossip-listen
	// reg registers a cluster member in etcd (both flags), from joinCluster until
	// it has left: a leaving member stays of record while it hands its pools off.
	reg atomic.Pointer[cluster.Registration]
}

func runNode(ctx context.Context, s Settings, log *slog.Logger) error {
	n := &node{settings: s, log: log, lim: limiter.New(clock.Real()), health: health.NewServer()}
	if s.Cluster.GossipListen != "" {
		n.lim = limiter.NewClustered(clock.Real())
	}
	n.metrics = server.NewMetrics(n.lim, s.TenantLabelLimit)
	n.srv = server.New(n.lim, n.metrics, log)

	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		if n.etcd != nil {
			n.etcd.Close()
		}
	}()
	updates, err := n.startConfig(ctx)
	if err != nil {
		return err
	}
	if s.StateDir != "" {
		restored, err := server.LoadState(s.StateDir, n.lim, time.Now())
		if err != nil {
			return err
		}
		log.Info("pool state restored", "dir", s.StateDir, "pools", restored)
	}

	var metricsSrv *http.Server
	if s.MetricsListen != "" {
		if metricsSrv, err = n.serveMetrics(); err != nil {
			return err
		}
	}
	lis, err := net.Listen("tcp", s.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.Listen, err)
	}
	grpcOpts := []grpc.ServerOption{grpc.MaxRecvMsgSize(s.MaxRecvBytes)}
	if s.Cluster.GossipListen != "" {
		if err := n.joinCluster(ctx, advertised(lis.Addr())); err != nil {
			lis.Close()
			return err
		}
		defer n.unregister()
		// A busy pool's state (its tombstones) can outgrow max-recv-bytes; peers
		// may send that much, clients still may not.
		grpcOpts = []grpc.ServerOption{grpc.MaxRecvMsgSize(max(s.MaxRecvBytes, maxPeerMessage)),
			grpc.ChainUnaryInterceptor(limitRequestSize(s.MaxRecvBytes), n.cluster.Interceptor())}
	} else if n.etcd != nil {
		addr := advertised(lis.Addr())
		reg := cluster.Register(n.etcd, cluster.Registered{ID: addr, Addr: addr}, cluster.RegistryOptions{TTL: s.NodeTTL, Logger: log})
		defer reg.Close()
	}
	gs := grpc.NewServer(grpcOpts...)
	quotadv1.RegisterQuotaServiceServer(gs, n.srv)
	if n.cluster != nil {
		quotadv1.RegisterPeerServiceServer(gs, n.cluster.PeerServer())
	}
	healthpb.RegisterHealthServer(gs, n.health)
	reflection.Register(gs)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	log.Info("quotad serving", "listen", lis.Addr().String(), "config", n.configName(), "pools", len(n.lim.Pools()), "gossip", n.gossipAddr())

	stateTick := make(<-chan time.Time)
	if s.StateDir != "" {
		t := time.NewTicker(s.StateInterval)
		defer t.Stop()
		stateTick = t.C
	}
	for {
		select {
		case snap, ok := <-updates:
			if ok {
				n.apply(snap)
			} else {
				updates = nil
			}
		case <-stateTick:
			n.saveState()
		case err := <-served:
			return fmt.Errorf("grpc server: %w", err)
		case <-ctx.Done():
			n.shutdown(gs, metricsSrv)
			return nil
		}
	}
}

// maxPeerMessage bounds one PeerService call (a pool state replicated or handed
// off): 16384 tombstones with 128-byte request ids take about 2.5 MiB.
const maxPeerMessage = 64 << 20

// limitRequestSize refuses, with RESOURCE_EXHAUSTED, any call but a peer's
// larger than limit bytes: the limit max-recv-bytes sets when not clustered.
func limitRequestSize(limit int) grpc.UnaryServerInterceptor {
	peer := "/" + quotadv1.PeerService_ServiceDesc.ServiceName + "/"
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if m, ok := req.(proto.Message); ok && !strings.HasPrefix(info.FullMethod, peer) {
			if size := proto.Size(m); size > limit {
				return nil, quotadv1.ErrorReason_REQUEST_TOO_LARGE.Error(codes.ResourceExhausted,
					fmt.Sprintf("request of %d bytes exceeds max-recv-bytes (%d)", size, limit))
			}
		}
		return handler(ctx, req)
	}
}

// configName says where the pools come from, for logs.
func (n *node) configName() string {
	if n.etcd != nil {
		return "etcd " + n.settings.Etcd.Endpoints + " " + n.settings.Etcd.prefix()
	}
	return n.settings.Config
}

// advertised is the address other nodes reach the listener at: the bound
// address, with the host name in place of an unspecified IP (0.0.0.0, ::).
func advertised(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return addr.String()
	}
	host, err := os.Hostname()
	if err != nil {
		return addr.String()
	}
	return net.JoinHostPort(host, strconv.Itoa(tcp.Port))
}

func (n *node) serveMetrics() (*http.Server, error) {
	lis, err := net.Listen("tcp", n.settings.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", n.settings.MetricsListen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(n.metrics.Registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("metrics server stopped", "err", err)
		}
	}()
	n.log.Info("metrics serving", "listen", lis.Addr().String())
	return srv, nil
}

// joinCluster starts the node's cluster membership: the members of record are the
// --join list and whoever joins (or, with etcd, the registered nodes), and the
// fence keeps the node from granting without a majority.
func (n *node) joinCluster(ctx context.Context, grpcAddr string) error {
	c := n.settings.Cluster
	key, err := c.key()
	if err != nil {
		return err
	}
	cfg := cluster.NodeConfig{
		Gossip:         cluster.MembershipConfig{Bind: c.GossipListen, Advertise: c.GossipAdvertise, Join: c.joins(), GossipKey: key},
		Fence:          cluster.QuorumConfig{FenceAfter: c.FenceAfter, SuspectAfter: c.SuspectAfter},
		HeartbeatEvery: c.Heartbeat,
		ReplicateEvery: c.Heartbeat,
		Logger:         n.log,
	}
	if n.etcd != nil {
		record := make(chan []string, 1)
		cfg.Record = record
		cfg.SelfUntil = func() time.Time {
			if r := n.reg.Load(); r != nil {
				return r.Deadline()
			}
			return time.Time{} // not registered (yet, or any more): no grants
		}
		watch := cluster.WatchNodes(ctx, n.etcd, cluster.DefaultNodesPrefix, time.Second)
		go func() {
			for nodes := range watch {
				ids := make([]string, len(nodes))
				for i, r := range nodes {
					ids[i] = r.ID
				}
				select {
				case <-record: // only the newest matters
				default:
				}
				record <- ids
			}
		}()
	}
	if c.BlockFile != "" {
		ft, err := cluster.NewFaultTransport(c.GossipListen)
		if err != nil {
			return fmt.Errorf("gossip-block-file: %w", err)
		}
		cfg.Gossip.Transport = ft
		go ft.FollowBlockFile(ctx, c.BlockFile, 200*time.Millisecond, n.log)
	}
	node, err := cluster.StartNode(n.lim, grpcAddr, cfg)
	if err != nil {
		return err
	}
	n.cluster = node
	n.metrics.Registry.MustRegister(node.Collector())
	if n.etcd != nil {
		r := cluster.Register(n.etcd, cluster.Registered{ID: node.ID(), Addr: grpcAddr}, cluster.RegistryOptions{TTL: n.settings.NodeTTL, Logger: n.log})
		n.reg.Store(r) // closed once the node has left (shutdown), not at the signal
	}
	return nil
}

// unregister ends the cluster member's etcd registration, if any and not yet.
func (n *node) unregister() {
	if r := n.reg.Swap(nil); r != nil {
		r.Close()
	}
}

func (n *node) gossipAddr() string {
	if n.cluster == nil {
		return ""
	}
	return n.cluster.ID()
}

// shutdown stops taking calls, fails waiters with UNAVAILABLE, lets calls in
// progress finish within the grace period, and saves the pool state. A member of
// a cluster first hands its pools to their next owners and leaves.
func (n *node) shutdown(gs *grpc.Server, metricsSrv *http.Server) {
	n.log.Info("shutting down")
	if n.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), n.settings.ShutdownGrace)
		if err := n.cluster.Leave(ctx); err != nil {
			n.log.Warn("leaving the cluster", "err", err)
		}
		cancel()
		n.unregister()
	}
	n.health.Shutdown()
	n.lim.Close()
	stopped := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(n.settings.ShutdownGrace):
		gs.Stop()
	}
	if metricsSrv != nil {
		metricsSrv.Close()
	}
	n.saveState()
}

func (n *node) saveState() {
	if n.settings.StateDir == "" {
		return
	}
	if err := server.SaveState(n.settings.StateDir, n.lim, time.Now()); err != nil {
		n.log.Error("saving pool state", "err", err)
	}
}
