package config

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// writeCache writes snap to CachePath, replacing the file atomically (write to a
// temporary file, then rename). A failure is logged: the cache only matters for a
// restart while etcd is down.
func (s *EtcdSource) writeCache(snap Snapshot) {
	if s.opts.CachePath == "" {
		return
	}
	if err := writeConfigFile(s.opts.CachePath, snap, s.opts.Prefix); err != nil {
		s.log().Error("writing the etcd config cache", "path", s.opts.CachePath, "err", err)
	}
}

func writeConfigFile(path string, snap Snapshot, prefix string) error {
	f := File{Pools: make([]Pool, 0, len(snap.Pools))}
	for _, name := range slices.Sorted(maps.Keys(snap.Pools)) {
		f.Pools = append(f.Pools, snap.Pools[name])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# The last good pools from etcd prefix %s (%s), written by quotad.\n", prefix, snap.Version)
	b.WriteString("# Read at start only when etcd is unreachable; edit the pools in etcd instead.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := errors.Join(enc.Encode(f), enc.Close()); err != nil {
		return fmt.Errorf("encode %d pools: %w", len(f.Pools), err)
	}

	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.WriteString(b.String()); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	return os.Rename(tmp.Name(), path)
}

// startFromCache makes the pools in CachePath the configuration in force, after
// the first list failed with listErr. It fails when there is no usable cache.
func (s *EtcdSource) startFromCache(listErr error) error {
	if s.opts.CachePath == "" {
		return fmt.Errorf("etcd: %w (and no cache of the last good configuration to start from)", listErr)
	}
	f, err := ReadFile(s.opts.CachePath)
	if err != nil {
		return fmt.Errorf("etcd: %w; cache of the last good configuration: %w", listErr, err)
	}
	pools := make(map[string]Pool, len(f.Pools))
	for _, p := range f.Pools {
		pools[p.Name] = p.Canonical()
	}
	s.pools, s.published = pools, true
	s.pub.publish(Snapshot{Pools: pools, Version: "etcd cache " + s.opts.CachePath})
	s.log().Warn("etcd unreachable at start; serving the cached last good configuration until it is reachable",
		"cache", s.opts.CachePath, "pools", len(pools), "err", listErr)
	return nil
}
