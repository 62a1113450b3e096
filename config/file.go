package config

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"time"
)

// DefaultFileInterval is how often a FileSource checks its file.
const DefaultFileInterval = time.Second

// racyWindow: a file modified this close to the time it was last read may have
// changed again without a visible change of size or timestamp (file systems
// stamp with a coarse clock, some to the second or two), so it is read again.
const racyWindow = 2 * time.Second

// FileOptions configure a FileSource.
type FileOptions struct {
	Options
	// Interval between checks of the file. Zero means DefaultFileInterval.
	Interval time.Duration
}

// FileSource is a Source backed by a configuration file (see ParseFile), polled
// for changes.
//
// Every Interval the file is stat'ed (following symlinks). It is read again when
// its identity (device and inode: an editor or a ConfigMap update that replaces
// the file by rename), size or modification time differs from the last read, or
// when it was modified within racyWindow of the last read. A read whose content
// hash (SHA-256) differs from the configuration in force is parsed and, when
// valid, delivered at once. A file that changes while it is read is read again at
// the next check.
//
// An invalid, empty, unreadable or missing file is rejected, and the last good
// configuration stays in force. A failure is reported only when the next check
// sees the same failure, so that a file caught half written in place, or briefly
// missing while an editor replaces it, is not reported; each failure is then
// reported once, however long it lasts.
//
// Polling needs no platform file-notification API and works on network and
// container-mounted files alike; the cost is up to one Interval of delay and one
// stat per Interval.
type FileSource struct {
	path string
	opts FileOptions
	pub  publisher

	// Owned by the polling goroutine.
	stat       os.FileInfo // at the last complete read; nil after a failed one
	readAt     time.Time   // when that read started
	applied    [32]byte    // content hash of the configuration in force
	suspect    [32]byte    // a failure seen once, not yet reported
	hasSuspect bool
	rejected   [32]byte // the failure last reported
	failing    bool     // a failure was reported and the file has not recovered
}

// NewFileSource loads the file at path and returns a source whose first snapshot
// is its content. It fails, starting nothing, if the file cannot be read or is
// invalid. The file is then polled until ctx ends, when Updates is closed.
func NewFileSource(ctx context.Context, path string, opts FileOptions) (*FileSource, error) {
	if opts.Interval <= 0 {
		opts.Interval = DefaultFileInterval
	}
	s := &FileSource{path: path, opts: opts, pub: newPublisher()}
	stat, readAt, data, err := s.read()
	if err != nil {
		return nil, err
	}
	if data == nil {
		return nil, fmt.Errorf("%s: the file changed while it was read; try again", path)
	}
	sum := sha256.Sum256(data)
	snap, err := s.snapshot(data, sum)
	if err != nil {
		return nil, err
	}
	s.stat, s.readAt, s.applied = stat, readAt, sum
	s.pub.publish(snap)
	s.opts.logger().Info("config loaded", "source", path, "pools", len(snap.Pools), "version", snap.Version)
	go s.run(ctx)
	return s, nil
}

// Updates implements Source.
func (s *FileSource) Updates() <-chan Snapshot { return s.pub.ch }

func (s *FileSource) run(ctx context.Context) {
	defer s.pub.close()
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.check()
		}
	}
}

// check reads the file if it may have changed, and delivers or rejects a new
// content.
func (s *FileSource) check() {
	if s.stat != nil && !s.hasSuspect {
		fi, err := os.Stat(s.path)
		if err == nil && sameFile(fi, s.stat) && fi.ModTime().Add(racyWindow).Before(s.readAt) {
			return
		}
	}
	stat, readAt, data, err := s.read()
	if err != nil {
		s.stat = nil
		s.fail(sha256.Sum256([]byte(err.Error())), err)
		return
	}
	if data == nil {
		return // changed while read: next check
	}
	s.stat, s.readAt = stat, readAt
	sum := sha256.Sum256(data)
	switch {
	case sum == s.applied:
		s.hasSuspect = false
		if s.failing {
			s.failing = false
			s.opts.logger().Info("config file holds the configuration in force again", "source", s.path)
		}
		return
	case s.failing && sum == s.rejected:
		return
	}
	snap, err := s.snapshot(data, sum)
	if err != nil {
		s.fail(sum, err)
		return
	}
	s.applied, s.hasSuspect, s.failing = sum, false, false
	s.pub.publish(snap)
	s.opts.logger().Info("config reloaded", "source", s.path, "pools", len(snap.Pools), "version", snap.Version)
}

// fail records a failure identified by id and reports it when it is seen twice
// in a row, unless it was reported already.
func (s *FileSource) fail(id [32]byte, err error) {
	switch {
	case s.failing && id == s.rejected:
	case !s.hasSuspect || id != s.suspect:
		s.suspect, s.hasSuspect = id, true
	default:
		s.hasSuspect = false
		s.failing, s.rejected = true, id
		s.opts.reject(s.path, err)
	}
}

// read returns the file's content and its stat. data is nil without an error
// when the file changed during the read.
func (s *FileSource) read() (stat os.FileInfo, readAt time.Time, data []byte, err error) {
	readAt = time.Now()
	before, err := os.Stat(s.path)
	if err != nil {
		return nil, readAt, nil, fmt.Errorf("config file: %w", err)
	}
	if data, err = readCapped(s.path); err != nil {
		return nil, readAt, nil, fmt.Errorf("config file: %w", err)
	}
	after, err := os.Stat(s.path)
	if err != nil || !sameFile(before, after) {
		return nil, readAt, nil, nil
	}
	return after, readAt, data, nil
}

func (s *FileSource) snapshot(data []byte, sum [32]byte) (Snapshot, error) {
	f, err := ParseFile(data)
	if err != nil {
		return Snapshot{}, fmt.Errorf("%s: %w", s.path, err)
	}
	return newSnapshot(f.Pools, "sha256:"+hex.EncodeToString(sum[:8])), nil
}

// sameFile reports whether a and b describe the same file with the same size
// and modification time.
func sameFile(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}
