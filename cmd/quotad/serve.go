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
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/quotad/quotad/cluster"
	"github.com/quotad/quotad/internal/clock"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
	"github.com/quotad/quotad/server"
	"github.com/quotad/quotad/server/limiter"
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
}

func runNode(ctx context.Context, s Settings, log *slog.Logger) error {
	n := &node{settings: s, log: log, lim: limiter.New(clock.Real()), health: health.NewServer()}
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
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(s.MaxRecvBytes))
	quotadv1.RegisterQuotaServiceServer(gs, n.srv)
	healthpb.RegisterHealthServer(gs, n.health)
	reflection.Register(gs)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	if n.etcd != nil {
		addr := advertised(lis.Addr())
		reg := cluster.Register(n.etcd, cluster.Node{ID: addr, Addr: addr}, cluster.RegistryOptions{Logger: log})
		defer reg.Close()
	}
	log.Info("quotad serving", "listen", lis.Addr().String(), "config", n.configName(), "pools", len(n.lim.Pools()))

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

// shutdown stops taking calls, fails waiters with UNAVAILABLE, lets calls in
// progress finish within the grace period, and saves the pool state.
func (n *node) shutdown(gs *grpc.Server, metricsSrv *http.Server) {
	n.log.Info("shutting down")
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
