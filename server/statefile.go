package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/quotad/quotad/limiter"
	statev1 "github.com/quotad/quotad/proto/quotad/state/v1"
)

// stateFileName is the file, in the state directory, that holds every pool's state.
const stateFileName = "pools.state"

// SaveState writes the state of every pool of lim to dir, atomically (a reader sees
// the old file or the new one, never half of one).
func SaveState(dir string, lim *limiter.Limiter, wall time.Time) error {
	data, err := proto.Marshal(&statev1.StateFile{Pools: lim.Snapshot(wall)})
	if err != nil {
		return fmt.Errorf("encode pool state: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	tmp, err := os.CreateTemp(dir, stateFileName+".*")
	if err != nil {
		return fmt.Errorf("save pool state: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save pool state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save pool state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save pool state: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, stateFileName)); err != nil {
		return fmt.Errorf("save pool state: %w", err)
	}
	return nil
}

// LoadState restores the pools of lim from the state saved in dir, refilled by the
// wall-clock time since it was saved. A missing file restores nothing; states of
// pools lim does not have are skipped. It returns how many pools it restored.
func LoadState(dir string, lim *limiter.Limiter, wall time.Time) (int, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFileName))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read pool state: %w", err)
	}
	var file statev1.StateFile
	if err := proto.Unmarshal(data, &file); err != nil {
		return 0, fmt.Errorf("decode pool state %s: %w", filepath.Join(dir, stateFileName), err)
	}
	restored := 0
	for _, st := range file.GetPools() {
		elapsed := wall.Sub(st.GetTakenAt().AsTime())
		err := lim.Restore(st, elapsed)
		switch {
		case errors.Is(err, limiter.ErrPoolNotFound):
			continue
		case err != nil:
			return restored, fmt.Errorf("%s: restore pool %q: %w", filepath.Join(dir, stateFileName), st.GetPool(), err)
		}
		restored++
	}
	return restored, nil
}
