package config

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const waitFor = 5 * time.Second

func poolFile(amount int) string {
	return fmt.Sprintf("pools:\n  - name: p\n    limits:\n      - {resource: requests, amount: %d, per: minute}\n", amount)
}

// replaceFile writes content to path the way careful editors do: a new file
// renamed over the old one.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type rejects struct {
	ch chan error
	n  atomic.Int32
}

func (r *rejects) hook(where string, err error) {
	r.n.Add(1)
	r.ch <- fmt.Errorf("%s: %w", where, err)
}

func (r *rejects) next(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.ch:
		return err
	case <-time.After(waitFor):
		t.Fatal("no rejection reported")
		return nil
	}
}

func startFileSource(t *testing.T, content string) (string, *FileSource, *rejects) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "quotad.yaml")
	replaceFile(t, path, content)
	r := &rejects{ch: make(chan error, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	src, err := NewFileSource(ctx, path, FileOptions{
		Options:  Options{Logger: slog.New(slog.DiscardHandler), OnReject: r.hook},
		Interval: 2 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return path, src, r
}

func nextSnapshot(t *testing.T, s Source) Snapshot {
	t.Helper()
	select {
	case snap, ok := <-s.Updates():
		if !ok {
			t.Fatal("updates closed")
		}
		return snap
	case <-time.After(waitFor):
		t.Fatal("no snapshot delivered")
		return Snapshot{}
	}
}

func amountOf(t *testing.T, s Snapshot) int64 {
	t.Helper()
	p, ok := s.Pools["p"]
	if !ok || len(p.Limits) != 1 {
		t.Fatalf("snapshot %+v", s)
	}
	return p.Limits[0].Amount
}

func TestFileSourceInitialLoad(t *testing.T) {
	_, src, _ := startFileSource(t, poolFile(5))
	snap := nextSnapshot(t, src)
	if amountOf(t, snap) != 5 || !strings.HasPrefix(snap.Version, "sha256:") {
		t.Fatalf("snapshot %+v", snap)
	}
	if *snap.Pools["p"].LeaseTTL != Duration(DefaultLeaseTTL) {
		t.Fatal("snapshot pools are not canonical")
	}
}

func TestFileSourceInitialErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewFileSource(t.Context(), filepath.Join(dir, "missing.yaml"), FileOptions{}); err == nil {
		t.Fatal("missing file accepted")
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("pools:\n- {name: p, concurrent: -3}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := NewFileSource(t.Context(), bad, FileOptions{})
	if err == nil || !strings.Contains(err.Error(), `bad.yaml: pool "p": concurrent: -3`) {
		t.Fatalf("got %v", err)
	}
}

func TestFileSourceLiveEdit(t *testing.T) {
	path, src, _ := startFileSource(t, poolFile(5))
	nextSnapshot(t, src)
	// In place, as some editors save; the source may see the file half written
	// and reject it, but must end up with the complete content.
	if err := os.WriteFile(path, []byte(poolFile(600)), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := amountOf(t, nextSnapshot(t, src)); got != 600 {
		t.Fatalf("amount %d after the edit", got)
	}
}

func TestFileSourceBadEditKeepsLastGood(t *testing.T) {
	path, src, r := startFileSource(t, poolFile(5))
	first := nextSnapshot(t, src)

	replaceFile(t, path, strings.Replace(poolFile(5), "amount: 5", "amount: -5", 1))
	err := r.next(t)
	if !strings.Contains(err.Error(), `pool "p": limits[0].amount: -5 must be positive`) || !strings.Contains(err.Error(), path) {
		t.Fatalf("rejection %v", err)
	}
	select {
	case s := <-src.Updates():
		t.Fatalf("a rejected file was delivered: %+v", s)
	default:
	}

	replaceFile(t, path, poolFile(70))
	second := nextSnapshot(t, src)
	if amountOf(t, second) != 70 || second.Version == first.Version {
		t.Fatalf("snapshot after the fix %+v", second)
	}
	if n := r.n.Load(); n != 1 {
		t.Fatalf("one bad edit reported %d times", n)
	}
}

func TestFileSourceRenameReplace(t *testing.T) {
	path, src, _ := startFileSource(t, poolFile(5))
	nextSnapshot(t, src)
	// Same size as before: only the file's identity changes.
	replaceFile(t, path, poolFile(6))
	if got := amountOf(t, nextSnapshot(t, src)); got != 6 {
		t.Fatalf("amount %d", got)
	}
}

func TestFileSourceSameContentNotRedelivered(t *testing.T) {
	path, src, _ := startFileSource(t, poolFile(5))
	first := nextSnapshot(t, src)
	replaceFile(t, path, poolFile(5))
	replaceFile(t, path, poolFile(8))
	if s := nextSnapshot(t, src); amountOf(t, s) != 8 || s.Version == first.Version {
		t.Fatalf("got %+v", s)
	}
}

func TestFileSourceMissingFile(t *testing.T) {
	path, src, r := startFileSource(t, poolFile(5))
	nextSnapshot(t, src)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := r.next(t); !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("rejection %v", err)
	}
	replaceFile(t, path, poolFile(9))
	if got := amountOf(t, nextSnapshot(t, src)); got != 9 {
		t.Fatalf("amount %d", got)
	}
	if n := r.n.Load(); n != 1 {
		t.Fatalf("a missing file reported %d times", n)
	}
}

func TestFileSourceClosesOnCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.yaml")
	replaceFile(t, path, poolFile(1))
	ctx, cancel := context.WithCancel(context.Background())
	src, err := NewFileSource(ctx, path, FileOptions{Options: Options{Logger: slog.New(slog.DiscardHandler)}, Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.After(waitFor)
	for {
		select {
		case _, ok := <-src.Updates():
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("updates not closed")
		}
	}
}

func TestPublisherLatestWins(t *testing.T) {
	p := newPublisher()
	p.publish(Snapshot{Version: "1"})
	p.publish(Snapshot{Version: "2"})
	if s := <-p.ch; s.Version != "2" {
		t.Fatalf("got version %s", s.Version)
	}
	select {
	case s := <-p.ch:
		t.Fatalf("stale snapshot %s", s.Version)
	default:
	}
}

// TestFileSourceCheck drives the checks by hand to pin down when failures are
// reported.
func TestFileSourceCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quotad.yaml")
	replaceFile(t, path, poolFile(5))
	r := &rejects{ch: make(chan error, 100)}
	src, err := NewFileSource(t.Context(), path, FileOptions{
		Options:  Options{Logger: slog.New(slog.DiscardHandler), OnReject: r.hook},
		Interval: time.Hour, // checks run only when the test calls check
	})
	if err != nil {
		t.Fatal(err)
	}
	nextSnapshot(t, src)
	noSnapshot := func() {
		t.Helper()
		select {
		case s := <-src.Updates():
			t.Fatalf("unexpected snapshot %+v", s)
		default:
		}
	}

	// A bad state seen by one check only (a half-written file) is not reported.
	replaceFile(t, path, "pools:\n  - name: p\n    limits:\n")
	src.check()
	replaceFile(t, path, poolFile(6))
	src.check()
	if got := amountOf(t, nextSnapshot(t, src)); got != 6 || r.n.Load() != 0 {
		t.Fatalf("amount %d, %d rejections", got, r.n.Load())
	}

	// Seen twice, it is reported once.
	replaceFile(t, path, "pools: [")
	src.check()
	src.check()
	src.check()
	noSnapshot()
	if n := r.n.Load(); n != 1 {
		t.Fatalf("%d rejections", n)
	}
	if err := r.next(t); !strings.Contains(err.Error(), "invalid YAML") {
		t.Fatalf("rejection %v", err)
	}

	// A missing file is a new failure.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	src.check()
	src.check()
	src.check()
	if n := r.n.Load(); n != 2 {
		t.Fatalf("%d rejections", n)
	}

	// The configuration in force comes back: nothing to deliver.
	replaceFile(t, path, poolFile(6))
	src.check()
	noSnapshot()
	if src.failing {
		t.Fatal("still failing after recovery")
	}
}
