package config

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/quotad/quotad/internal/etcdtest"
)

func etcdPool(amount int) string {
	return fmt.Sprintf("limits:\n  - {resource: requests, amount: %d, per: minute}\n", amount)
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type etcdHarness struct {
	src       *EtcdSource
	rejects   *rejects
	log       *syncBuffer
	connected chan bool
	cancel    context.CancelFunc
}

// startEtcdSource starts a source on endpoints with short timings.
func startEtcdSource(t *testing.T, cli *clientv3.Client, cache string) (*etcdHarness, error) {
	t.Helper()
	h := &etcdHarness{rejects: &rejects{ch: make(chan error, 100)}, log: &syncBuffer{}, connected: make(chan bool, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h.cancel = cancel
	var err error
	h.src, err = NewEtcdSource(ctx, cli, EtcdOptions{
		Options:        Options{Logger: slog.New(slog.NewTextHandler(h.log, nil)), OnReject: h.rejects.hook},
		CachePath:      cache,
		StartTimeout:   300 * time.Millisecond,
		RequestTimeout: 300 * time.Millisecond,
		ProbeInterval:  50 * time.Millisecond,
		MinBackoff:     10 * time.Millisecond,
		MaxBackoff:     100 * time.Millisecond,
		OnConnected:    func(up bool) { h.connected <- up },
	})
	return h, err
}

func mustStartEtcdSource(t *testing.T, cli *clientv3.Client, cache string) *etcdHarness {
	t.Helper()
	h, err := startEtcdSource(t, cli, cache)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// waitConnected waits for OnConnected(want).
func (h *etcdHarness) waitConnected(t *testing.T, want bool) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case up := <-h.connected:
			if up == want {
				return
			}
		case <-deadline:
			t.Fatalf("OnConnected(%v) not called", want)
		}
	}
}

// noSnapshot checks that nothing is delivered for a while.
func noSnapshot(t *testing.T, s Source, within time.Duration) {
	t.Helper()
	select {
	case snap := <-s.Updates():
		t.Fatalf("unexpected snapshot %s: %+v", snap.Version, snap.Pools)
	case <-time.After(within):
	}
}

func amounts(s Snapshot) map[string]int64 {
	m := make(map[string]int64, len(s.Pools))
	for name, p := range s.Pools {
		m[name] = p.Limits[0].Amount
	}
	return m
}

func wantAmounts(t *testing.T, s Snapshot, want map[string]int64) {
	t.Helper()
	got := amounts(s)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("snapshot %s: amounts %v, want %v", s.Version, got, want)
	}
}

func TestEtcdSourceListThenWatch(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	cli := e.Client(t)
	etcdtest.Put(t, cli, DefaultEtcdPrefix+"a", etcdPool(10))
	etcdtest.Put(t, cli, DefaultEtcdPrefix+"b", `{"name": "b", "limits": [{"resource": "tokens", "amount": 20, "per": "1s"}]}`)
	etcdtest.Put(t, cli, "/elsewhere/c", etcdPool(30))
	h := mustStartEtcdSource(t, cli, "")
	wantAmounts(t, nextSnapshot(t, h.src), map[string]int64{"a": 10, "b": 20})
	h.waitConnected(t, true)

	etcdtest.Put(t, cli, DefaultEtcdPrefix+"a", etcdPool(11))
	wantAmounts(t, nextSnapshot(t, h.src), map[string]int64{"a": 11, "b": 20})
	etcdtest.Delete(t, cli, DefaultEtcdPrefix+"b")
	wantAmounts(t, nextSnapshot(t, h.src), map[string]int64{"a": 11})
	etcdtest.Put(t, cli, DefaultEtcdPrefix+"a", etcdPool(11)) // same content: nothing new
	noSnapshot(t, h.src, 100*time.Millisecond)
	rev := etcdtest.Put(t, cli, DefaultEtcdPrefix+"c", etcdPool(3))
	snap := nextSnapshot(t, h.src)
	wantAmounts(t, snap, map[string]int64{"a": 11, "c": 3})
	if want := fmt.Sprintf("etcd revision %d", rev); snap.Version != want {
		t.Errorf("version %q, want %q", snap.Version, want)
	}

	h.cancel()
	select {
	case _, ok := <-h.src.Updates():
		if ok {
			t.Fatal("a snapshot after cancel")
		}
	case <-time.After(waitFor):
		t.Fatal("updates not closed after cancel")
	}
}

func TestEtcdSourceRefusesBadValues(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	cli := e.Client(t)
	key := DefaultEtcdPrefix + "p"
	etcdtest.Put(t, cli, key, etcdPool(100))
	h := mustStartEtcdSource(t, cli, "")
	wantAmounts(t, nextSnapshot(t, h.src), map[string]int64{"p": 100})

	for i, tc := range []struct {
		name, value, want string
	}{
		{"malformed YAML", "limits: [{resource: requests", "invalid YAML"},
		{"negative amount", etcdPool(-5), "limits[0].amount: -5"},
		{"unknown field", etcdPool(5) + "colour: blue\n", "colour: unknown field"},
		{"1 MB value", etcdPool(5) + "# " + strings.Repeat("x", 1<<20) + "\n", "at most 65536"},
		{"name differs from key", "name: q\n" + etcdPool(5), `differs from the key "p"`},
	} {
		rev := etcdtest.Put(t, cli, key, tc.value)
		err := h.rejects.next(t)
		if !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: rejection %q does not name the key and %q", tc.name, err, tc.want)
		}
		if !strings.Contains(h.log.String(), fmt.Sprintf("revision=%d", rev)) {
			t.Errorf("%s: the log does not name revision %d:\n%s", tc.name, rev, h.log.String())
		}
		// A change to another pool delivers the last good definition of p.
		etcdtest.Put(t, cli, DefaultEtcdPrefix+"other", etcdPool(i+1))
		wantAmounts(t, nextSnapshot(t, h.src), map[string]int64{"p": 100, "other": int64(i + 1)})
	}
	if n := h.rejects.n.Load(); n != 5 {
		t.Errorf("%d rejections, want one per bad value", n)
	}
	if r := h.src.Rejections(); len(r) != 1 || r[0].Key != key || r[0].Pool != "p" || r[0].Err == nil {
		t.Errorf("Rejections() = %+v, want the last bad value of %s", r, key)
	}

	// A bad value for a new pool leaves it absent; a good one then adds it.
	etcdtest.Put(t, cli, DefaultEtcdPrefix+"new", etcdPool(0))
	h.rejects.next(t)
	noSnapshot(t, h.src, 100*time.Millisecond)
	etcdtest.Put(t, cli, DefaultEtcdPrefix+"new", etcdPool(7))
	wantAmounts(t, nextSnapshot(t, h.src), map[string]int64{"p": 100, "other": 5, "new": 7})
	// A good value replaces a refused one.
	etcdtest.Put(t, cli, key, etcdPool(50))
	wantAmounts(t, nextSnapshot(t, h.src), map[string]int64{"p": 50, "other": 5, "new": 7})
	if r := h.src.Rejections(); len(r) != 0 {
		t.Errorf("Rejections() = %+v after every bad value was replaced", r)
	}
}

func TestEtcdSourceFollowsEtcdRestart(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	cli := e.Client(t)
	etcdtest.Put(t, cli, DefaultEtcdPrefix+"p", etcdPool(1))
	h := mustStartEtcdSource(t, cli, "")
	wantAmounts(t, nextSnapshot(t, h.src), map[string]int64{"p": 1})
	h.waitConnected(t, true)

	e.Stop(t)
	h.waitConnected(t, false)
	if !strings.Contains(h.log.String(), "etcd unreachable") {
		t.Errorf("no log line for the lost connection:\n%s", h.log.String())
	}
	noSnapshot(t, h.src, 200*time.Millisecond)
	e.Restart(t)
	h.waitConnected(t, true)
	etcdtest.Put(t, cli, DefaultEtcdPrefix+"p", etcdPool(2))
	wantAmounts(t, nextSnapshot(t, h.src), map[string]int64{"p": 2})
}

func TestEtcdSourceResumesAfterPartition(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	admin := e.Client(t)
	proxy := etcdtest.NewProxy(t, e)
	etcdtest.Put(t, admin, DefaultEtcdPrefix+"p", etcdPool(1))
	h := mustStartEtcdSource(t, etcdtest.Dial(t, proxy.Endpoints()), "")
	wantAmounts(t, nextSnapshot(t, h.src), map[string]int64{"p": 1})
	h.waitConnected(t, true)

	// Changes made while the source is cut off arrive through the resumed watch,
	// each once.
	proxy.Cut()
	h.waitConnected(t, false)
	etcdtest.Put(t, admin, DefaultEtcdPrefix+"p", etcdPool(2))
	etcdtest.Put(t, admin, DefaultEtcdPrefix+"q", etcdPool(3))
	proxy.Heal()
	h.waitConnected(t, true)
	snap := nextSnapshot(t, h.src)
	if len(snap.Pools) < 2 { // the two changes may come in two responses
		snap = nextSnapshot(t, h.src)
	}
	wantAmounts(t, snap, map[string]int64{"p": 2, "q": 3})
	noSnapshot(t, h.src, 100*time.Millisecond)
	if strings.Contains(h.log.String(), "listing again") {
		t.Errorf("listed again without a compaction:\n%s", h.log.String())
	}
}

func TestEtcdSourceRelistsAfterCompaction(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	admin := e.Client(t)
	proxy := etcdtest.NewProxy(t, e)
	etcdtest.Put(t, admin, DefaultEtcdPrefix+"p", etcdPool(1))
	etcdtest.Put(t, admin, DefaultEtcdPrefix+"gone", etcdPool(9))
	h := mustStartEtcdSource(t, etcdtest.Dial(t, proxy.Endpoints()), "")
	wantAmounts(t, nextSnapshot(t, h.src), map[string]int64{"p": 1, "gone": 9})
	h.waitConnected(t, true)

	proxy.Cut()
	h.waitConnected(t, false)
	etcdtest.Put(t, admin, DefaultEtcdPrefix+"p", etcdPool(2))
	etcdtest.Put(t, admin, DefaultEtcdPrefix+"p", etcdPool(3))
	etcdtest.Delete(t, admin, DefaultEtcdPrefix+"gone")
	etcdtest.Put(t, admin, DefaultEtcdPrefix+"new", etcdPool(4))
	etcdtest.Compact(t, admin)
	proxy.Heal()
	wantAmounts(t, nextSnapshot(t, h.src), map[string]int64{"p": 3, "new": 4})
	if !strings.Contains(h.log.String(), "listing again") {
		t.Errorf("no re-list logged:\n%s", h.log.String())
	}
	noSnapshot(t, h.src, 100*time.Millisecond)
	etcdtest.Put(t, admin, DefaultEtcdPrefix+"p", etcdPool(5))
	wantAmounts(t, nextSnapshot(t, h.src), map[string]int64{"p": 5, "new": 4})
}

func TestEtcdSourceStartsFromCache(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	cli := e.Client(t)
	cache := filepath.Join(t.TempDir(), "pools.etcd.yaml")
	etcdtest.Put(t, cli, DefaultEtcdPrefix+"p", etcdPool(1))
	etcdtest.Put(t, cli, DefaultEtcdPrefix+"q", "limits: [{resource: tokens, amount: 5, per: 1h, initial: 0.5}]\ntenants: {web: {weight: 3}}\nheadroom: 0.9\n")
	h := mustStartEtcdSource(t, cli, cache)
	first := nextSnapshot(t, h.src)
	wantAmounts(t, first, map[string]int64{"p": 1, "q": 5})
	h.cancel()
	if _, err := ReadFile(cache); err != nil {
		t.Fatalf("cache: %v", err)
	}

	e.Stop(t)
	if _, err := startEtcdSource(t, cli, ""); err == nil || !strings.Contains(err.Error(), "no cache") {
		t.Errorf("etcd down and no cache: err %v, want a failure saying so", err)
	}
	h = mustStartEtcdSource(t, cli, cache)
	snap := nextSnapshot(t, h.src)
	if !samePools(snap.Pools, first.Pools) {
		t.Fatalf("started from cache with %+v, want %+v", snap.Pools, first.Pools)
	}
	if !strings.Contains(h.log.String(), "cached last good configuration") {
		t.Errorf("no log line about the cache:\n%s", h.log.String())
	}

	e.Restart(t)
	h.waitConnected(t, true)
	noSnapshot(t, h.src, 200*time.Millisecond) // etcd holds what the cache held
	etcdtest.Put(t, cli, DefaultEtcdPrefix+"p", etcdPool(2))
	wantAmounts(t, nextSnapshot(t, h.src), map[string]int64{"p": 2, "q": 5})
}

func TestEtcdSourceCorruptCache(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	cli := e.Client(t)
	e.Stop(t)
	cache := filepath.Join(t.TempDir(), "pools.etcd.yaml")
	if err := os.WriteFile(cache, []byte("pools: [{name: p}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := startEtcdSource(t, cli, cache)
	if err == nil || !strings.Contains(err.Error(), "cache") || !strings.Contains(err.Error(), `pool "p"`) {
		t.Errorf("err %v, want one naming the cache and the bad pool", err)
	}
}
