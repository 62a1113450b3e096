package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultEtcdPrefix is where pools live in etcd: one key per pool, named
// prefix + pool name, whose value is the pool in YAML or JSON (see ParsePool).
const DefaultEtcdPrefix = "/quotad/pools/"

// EtcdOptions configure an EtcdSource. Zero durations take the documented
// defaults.
type EtcdOptions struct {
	Options
	// Prefix is the key prefix of the pools; a slash is added when it does not end
	// with one. Empty means DefaultEtcdPrefix.
	Prefix string
	// CachePath, when set, is a file where every configuration delivered is
	// written (in the configuration file format), and from which the source starts
	// when etcd cannot be reached at start.
	CachePath string
	// StartTimeout bounds the first list before the source falls back to
	// CachePath. Default 5s.
	StartTimeout time.Duration
	// RequestTimeout bounds each later list and connectivity probe. Default 5s.
	RequestTimeout time.Duration
	// ProbeInterval is how often reachability is checked. Default 1s.
	ProbeInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed attempts to list or
	// watch. Defaults 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// OnConnected, when set, is called with true when etcd becomes reachable and
	// with false when it stops being reachable; first with the result of the
	// first probe. Calls come from one goroutine of the source, never
	// concurrently, and must not block.
	OnConnected func(connected bool)
}

func (o *EtcdOptions) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.Prefix == "" {
		o.Prefix = DefaultEtcdPrefix
	}
	if !strings.HasSuffix(o.Prefix, "/") {
		o.Prefix += "/"
	}
	def(&o.StartTimeout, 5*time.Second)
	def(&o.RequestTimeout, 5*time.Second)
	def(&o.ProbeInterval, time.Second)
	def(&o.MinBackoff, 100*time.Millisecond)
	def(&o.MaxBackoff, 5*time.Second)
}

// EtcdSource is a Source backed by the keys under a prefix in etcd.
//
// It lists the prefix at a revision, delivers that as the first snapshot, then
// watches the prefix from the next revision. Each watch response (the changes of
// one or more revisions) yields at most one snapshot, delivered only when a pool
// changed. After a disconnect the watch resumes after the last revision seen; when
// that revision has been compacted away the source lists the prefix again and
// delivers the difference, if any. A change is never skipped nor applied twice:
// the source tracks the revision it has applied up to and ignores older events.
//
// A value that does not parse or validate is refused: it is logged once with its
// key, mod revision and reason, reported through OnReject, and the pool keeps its
// last good definition (a pool that never had one stays absent). Deleting the key
// deletes the pool.
//
// While etcd is unreachable the source keeps the last good configuration and
// retries with exponential backoff; reachability is probed every ProbeInterval,
// logged on change and reported through OnConnected.
//
// The values refused and not yet replaced or deleted are listed by Rejections.
//
// The mutable state below is owned by the source's goroutine, except connected
// and rejected.
type EtcdSource struct {
	cli  *clientv3.Client
	opts EtcdOptions
	pub  publisher

	connected atomic.Bool

	mu       sync.Mutex           // guards rejected
	rejected map[string]Rejection // by key: values refused, not replaced since

	pools     map[string]Pool // the configuration in force, by pool name
	rev       int64           // changes up to this revision are applied
	published bool            // a snapshot was delivered
	lastErr   string          // the last list or watch failure logged
}

// Rejection is a value in etcd that an EtcdSource refused.
type Rejection struct {
	Key      string
	Pool     string // the pool name the key gives
	Revision int64  // the value's mod revision
	Err      error  // why it was refused
}

// errCompacted reports that the watch must start from a fresh list.
var errCompacted = errors.New("watch revision compacted")

// NewEtcdSource lists the pools under opts.Prefix and returns a source whose first
// snapshot is that list. When etcd cannot be listed within StartTimeout, the
// source starts from the configuration cached in CachePath instead, and lists
// again in the background; without a usable cache it fails, starting nothing. The
// source follows etcd until ctx ends, when Updates is closed. The caller keeps
// ownership of cli and must not close it before ctx ends.
func NewEtcdSource(ctx context.Context, cli *clientv3.Client, opts EtcdOptions) (*EtcdSource, error) {
	opts.setDefaults()
	s := &EtcdSource{cli: cli, opts: opts, pub: newPublisher(), rejected: make(map[string]Rejection)}
	listed := true
	if err := s.list(ctx, opts.StartTimeout); err != nil {
		if err := s.startFromCache(err); err != nil {
			return nil, err
		}
		listed = false
	}
	go s.probe(ctx)
	go s.run(ctx, listed)
	return s, nil
}

// Updates implements Source.
func (s *EtcdSource) Updates() <-chan Snapshot { return s.pub.ch }

// Rejections returns the values refused and not replaced or deleted since, by
// key. Safe for concurrent use.
func (s *EtcdSource) Rejections() []Rejection {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Collect(maps.Values(s.rejected))
	slices.SortFunc(out, func(a, b Rejection) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// Connected reports whether the last probe reached etcd. Safe for concurrent use.
func (s *EtcdSource) Connected() bool { return s.connected.Load() }

func (s *EtcdSource) log() *slog.Logger { return s.opts.logger() }

// run lists (unless listed) and watches until ctx ends.
func (s *EtcdSource) run(ctx context.Context, listed bool) {
	defer s.pub.close()
	b := backoff{min: s.opts.MinBackoff, max: s.opts.MaxBackoff}
	for ctx.Err() == nil {
		if !listed {
			if err := s.list(ctx, s.opts.RequestTimeout); err != nil {
				s.failed("list", err)
				b.wait(ctx)
				continue
			}
			listed = true
			b.reset()
		}
		err := s.watch(ctx, &b)
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, errCompacted):
			s.log().Info("etcd watch fell behind a compaction; listing again", "prefix", s.opts.Prefix, "revision", s.rev)
			listed = false
		default:
			s.failed("watch", err)
			b.wait(ctx)
		}
	}
}

// list reads every pool under the prefix at the current revision and makes it
// the configuration in force.
func (s *EtcdSource) list(ctx context.Context, timeout time.Duration) error {
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := s.cli.Get(lctx, s.opts.Prefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("list %s: %w", s.opts.Prefix, err)
	}
	next := make(map[string]Pool, len(resp.Kvs))
	keys := make(map[string]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		keys[string(kv.Key)] = true
		s.put(next, kv)
	}
	s.mu.Lock()
	for key := range s.rejected {
		if !keys[key] {
			delete(s.rejected, key)
		}
	}
	s.mu.Unlock()
	s.rev = resp.Header.Revision
	s.commit(next)
	s.lastErr = ""
	return nil
}

// watch follows changes after s.rev until the watch ends, and says why it ended.
func (s *EtcdSource) watch(ctx context.Context, b *backoff) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := s.cli.Watch(wctx, s.opts.Prefix, clientv3.WithPrefix(), clientv3.WithRev(s.rev+1), clientv3.WithCreatedNotify())
	for resp := range wch {
		if resp.CompactRevision != 0 {
			return fmt.Errorf("%w: revision %d is compacted (compacted up to %d)", errCompacted, s.rev+1, resp.CompactRevision)
		}
		if err := resp.Err(); err != nil {
			return fmt.Errorf("watch %s from revision %d: %w", s.opts.Prefix, s.rev+1, err)
		}
		b.reset()
		s.lastErr = ""
		if len(resp.Events) > 0 {
			s.apply(resp.Events)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("watch %s from revision %d: closed", s.opts.Prefix, s.rev+1)
}

// apply applies the events newer than s.rev and delivers the result.
func (s *EtcdSource) apply(events []*clientv3.Event) {
	next := maps.Clone(s.pools)
	rev := s.rev
	for _, ev := range events {
		if ev.Kv.ModRevision <= s.rev {
			continue // already applied by a list
		}
		rev = max(rev, ev.Kv.ModRevision)
		key := string(ev.Kv.Key)
		switch ev.Type {
		case mvccpb.PUT:
			s.put(next, ev.Kv)
		case mvccpb.DELETE:
			delete(next, strings.TrimPrefix(key, s.opts.Prefix))
			s.mu.Lock()
			delete(s.rejected, key)
			s.mu.Unlock()
		}
	}
	s.rev = rev
	s.commit(next)
}

// put sets next[name] to the pool stored in kv, or refuses kv and keeps the last
// good definition: the one already in next, else the one in force.
func (s *EtcdSource) put(next map[string]Pool, kv *mvccpb.KeyValue) {
	key := string(kv.Key)
	name := strings.TrimPrefix(key, s.opts.Prefix)
	var (
		p   Pool
		err error
	)
	if name == "" {
		err = fmt.Errorf("key %q names no pool after the prefix", key)
	} else {
		p, err = ParsePool(kv.Value, name)
	}
	if err == nil {
		next[name] = p.Canonical()
		s.mu.Lock()
		delete(s.rejected, key)
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	old, seen := s.rejected[key]
	s.rejected[key] = Rejection{Key: key, Pool: name, Revision: kv.ModRevision, Err: err}
	s.mu.Unlock()
	if seen && old.Revision == kv.ModRevision {
		return // refused already
	}
	if _, ok := next[name]; !ok && name != "" {
		if old, ok := s.pools[name]; ok {
			next[name] = old
		}
	}
	_, kept := next[name]
	s.log().Error("config value rejected; the pool keeps its last good definition",
		"key", key, "revision", kv.ModRevision, "kept_last_good", kept, "err", err)
	if s.opts.OnReject != nil {
		s.opts.OnReject(key, err)
	}
}

// commit makes next the configuration in force and delivers it, unless it equals
// the one delivered last.
func (s *EtcdSource) commit(next map[string]Pool) {
	if s.published && samePools(s.pools, next) {
		return
	}
	s.pools, s.published = next, true
	snap := Snapshot{Pools: next, Version: fmt.Sprintf("etcd revision %d", s.rev)}
	s.pub.publish(snap)
	s.log().Info("config loaded", "source", "etcd", "prefix", s.opts.Prefix, "pools", len(next), "version", snap.Version)
	s.writeCache(snap)
}

func samePools(a, b map[string]Pool) bool {
	return maps.EqualFunc(a, b, func(p, q Pool) bool { return p.Equal(q) })
}

// failed logs a list or watch failure, once until something succeeds or the
// failure changes.
func (s *EtcdSource) failed(what string, err error) {
	if msg := err.Error(); msg != s.lastErr {
		s.lastErr = msg
		s.log().Warn("etcd "+what+" failed; serving the last good configuration and retrying", "prefix", s.opts.Prefix, "err", err)
	}
}

// probe checks reachability every ProbeInterval until ctx ends, and reports
// changes.
func (s *EtcdSource) probe(ctx context.Context) {
	t := time.NewTicker(s.opts.ProbeInterval)
	defer t.Stop()
	first := true
	for {
		pctx, cancel := context.WithTimeout(ctx, min(s.opts.RequestTimeout, s.opts.ProbeInterval))
		_, err := s.cli.Get(pctx, s.opts.Prefix, clientv3.WithCountOnly())
		cancel()
		if ctx.Err() != nil {
			return
		}
		up := err == nil
		if first || up != s.connected.Load() {
			s.connected.Store(up)
			if up {
				s.log().Info("etcd reachable", "prefix", s.opts.Prefix)
			} else {
				s.log().Warn("etcd unreachable; serving the last good configuration", "prefix", s.opts.Prefix, "err", err)
			}
			if s.opts.OnConnected != nil {
				s.opts.OnConnected(up)
			}
			first = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// backoff is an exponential backoff with jitter. Not safe for concurrent use.
type backoff struct {
	min, max, next time.Duration
}

// wait sleeps for the next delay, or until ctx ends.
func (b *backoff) wait(ctx context.Context) {
	d := max(b.next, b.min)
	b.next = min(2*d, b.max)
	d = d/2 + rand.N(d/2+1) // jitter: [d/2, d]
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (b *backoff) reset() { b.next = 0 }
