package config

import (
	"log/slog"
)

// Snapshot is a complete, validated configuration: every pool in force, by name.
// Pools are in canonical form (see Pool.Canonical). A snapshot is never modified
// after it is delivered; receivers must not modify it either.
type Snapshot struct {
	Pools map[string]Pool
	// Version identifies the content for logs: a content hash for a file, a
	// revision for etcd. Equal versions from one source mean equal pools.
	Version string
}

// NewSnapshot validates pools, checks that no name is used twice, and returns
// them as a snapshot of canonical pools. It reports every problem, joined with
// errors.Join.
func NewSnapshot(pools []Pool, version string) (Snapshot, error) {
	if err := (File{Pools: pools}).Validate(); err != nil {
		return Snapshot{}, err
	}
	return newSnapshot(pools, version), nil
}

// newSnapshot builds a snapshot of pools already validated.
func newSnapshot(pools []Pool, version string) Snapshot {
	s := Snapshot{Pools: make(map[string]Pool, len(pools)), Version: version}
	for _, p := range pools {
		s.Pools[p.Name] = p.Canonical()
	}
	return s
}

// Source delivers the pool configuration as a sequence of snapshots.
//
// The contract every implementation keeps:
//   - Updates returns the same channel on every call. A snapshot is available on
//     it as soon as the source is constructed successfully: the initial
//     configuration.
//   - Every snapshot is complete and validated: it replaces the previous one, and
//     a pool absent from it is deleted.
//   - A bad update (invalid content, a vanished file) is never delivered. It is
//     logged with its reason and reported once through Options.OnReject (a source
//     may first wait to see that the failure persists); the last good snapshot
//     stays in force until a good update replaces it.
//   - Delivery is latest-wins: the source never blocks on a slow receiver; a
//     snapshot the receiver has not taken yet is replaced by a newer one, so the
//     receiver always ends up with the newest configuration.
//   - The channel is closed when the context the source was started with ends.
type Source interface {
	Updates() <-chan Snapshot
}

// Options are common to all sources.
type Options struct {
	// Logger receives load, reject and recovery messages. Nil means slog.Default().
	Logger *slog.Logger
	// OnReject, when set, is called once for each rejected update, with where it
	// came from (a file path, an etcd key) and why. It is called from the source's
	// goroutine and must not block.
	OnReject func(where string, err error)
}

func (o Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

// reject logs and reports a rejected update.
func (o Options) reject(where string, err error) {
	o.logger().Error("config update rejected; keeping the last good configuration", "source", where, "err", err)
	if o.OnReject != nil {
		o.OnReject(where, err)
	}
}

// publisher is the sending side of a Source's channel. Exactly one goroutine
// owns it and sends through it.
type publisher struct {
	ch chan Snapshot
}

func newPublisher() publisher { return publisher{ch: make(chan Snapshot, 1)} }

// publish makes s the snapshot waiting on the channel, replacing one the receiver
// has not taken yet. It never blocks: the owner is the only sender, so after the
// drain there is room.
func (p publisher) publish(s Snapshot) {
	select {
	case <-p.ch:
	default:
	}
	p.ch <- s
}

func (p publisher) close() { close(p.ch) }
