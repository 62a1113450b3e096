package main

import (
	"context"
	"fmt"
	"path/filepath"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/quotad/quotad/config"
)

// etcdCacheFile, under --state-dir, holds the last good pools read from etcd, for
// a start while etcd is down.
const etcdCacheFile = "pools.etcd.yaml"

// configHealthService is the health service that reports whether the config
// source reaches etcd. The node's overall health stays SERVING either way: it
// serves on its last good configuration.
const configHealthService = "quotad.config"

// startConfig starts the node's config source (etcd with --etcd-endpoints, the
// file otherwise) and applies its first snapshot, so the node serves its pools
// from the first call.
func (n *node) startConfig(ctx context.Context) (<-chan config.Snapshot, error) {
	var (
		src config.Source
		err error
	)
	if n.settings.Etcd.Endpoints != "" {
		src, err = n.startEtcdSource(ctx)
	} else {
		src, err = config.NewFileSource(ctx, n.settings.Config, config.FileOptions{
			Options: config.Options{
				Logger:   n.log,
				OnReject: func(string, error) { n.metrics.ConfigRejected("file") },
			},
			Interval: n.settings.ConfigInterval,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	updates := src.Updates()
	n.apply(<-updates)
	return updates, nil
}

// startEtcdSource connects to etcd (the client is n.etcd from then on) and
// starts following the pools there.
func (n *node) startEtcdSource(ctx context.Context) (config.Source, error) {
	cli, err := n.settings.Etcd.client()
	if err != nil {
		return nil, err
	}
	n.etcd = cli
	var cache string
	if n.settings.StateDir != "" {
		cache = filepath.Join(n.settings.StateDir, etcdCacheFile)
	}
	src, err := config.NewEtcdSource(ctx, cli, config.EtcdOptions{
		Options: config.Options{
			Logger:   n.log,
			OnReject: func(string, error) { n.metrics.ConfigRejected("etcd") },
		},
		Prefix:      n.settings.Etcd.prefix(),
		CachePath:   cache,
		OnConnected: n.etcdConnected,
	})
	if err != nil {
		return nil, err
	}
	n.srv.SetRejections(src.Rejections)
	return src, nil
}

// etcdConnected reports etcd reachability in the metrics and the health service
// configHealthService.
func (n *node) etcdConnected(up bool) {
	n.metrics.ConfigSourceConnected("etcd", up)
	status := healthpb.HealthCheckResponse_NOT_SERVING
	if up {
		status = healthpb.HealthCheckResponse_SERVING
	}
	n.health.SetServingStatus(configHealthService, status)
}

// apply puts snap in force. Pools keep their state across changes; a pool the
// engine refuses keeps its last good definition.
func (n *node) apply(snap config.Snapshot) {
	if err := n.srv.Apply(snap); err != nil {
		n.metrics.ConfigRejected("engine")
		n.log.Error("config partly rejected", "version", snap.Version, "err", err)
		return
	}
	n.log.Info("config applied", "version", snap.Version, "pools", len(snap.Pools))
}
