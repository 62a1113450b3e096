package main

import (
	"context"
	"fmt"

	"github.com/quotad/quotad/config"
	"github.com/quotad/quotad/server/limiter"
)

// startConfig starts the node's config source and applies its first snapshot, so
// the node serves its pools from the first call.
func (n *node) startConfig(ctx context.Context) (<-chan config.Snapshot, error) {
	src, err := config.NewFileSource(ctx, n.settings.Config, config.FileOptions{
		Options: config.Options{
			Logger:   n.log,
			OnReject: func(string, error) { n.metrics.ConfigRejected("file") },
		},
		Interval: n.settings.ConfigInterval,
	})
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	updates := src.Updates()
	n.apply(<-updates)
	return updates, nil
}

// apply makes the engine's pools those of snap. Pools keep their state across
// changes; a pool the engine refuses keeps its last good definition.
func (n *node) apply(snap config.Snapshot) {
	cfgs := make(map[string]limiter.Config, len(snap.Pools))
	for name, p := range snap.Pools {
		cfgs[name] = p.Limiter()
	}
	if err := n.lim.Apply(cfgs); err != nil {
		n.metrics.ConfigRejected("engine")
		n.log.Error("config partly rejected", "version", snap.Version, "err", err)
		return
	}
	n.log.Info("config applied", "version", snap.Version, "pools", len(cfgs))
}
