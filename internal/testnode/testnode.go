// Package testnode builds the quotad binary and runs it as a real process on
// loopback for end-to-end tests.
package testnode

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/quotad/quotad/internal/quotadproc"
)

var build struct {
	once sync.Once
	path string
	err  error
}

// Binary returns the quotad binary to test: $QUOTAD_BIN when set (`make test`
// builds it once for every package), else ./cmd/quotad built once per test
// process.
func Binary(t testing.TB) string {
	t.Helper()
	if path := os.Getenv("QUOTAD_BIN"); path != "" {
		return path
	}
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "quotad-bin-")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(dir, "quotad")
		cmd := exec.Command("go", "build", "-o", build.path, "github.com/quotad/quotad/cmd/quotad")
		cmd.Dir = moduleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Node is a running quotad process.
type Node struct {
	*quotadproc.Node
}

// Start runs `quotad serve args...` on a free loopback port and waits until it
// serves. The process is killed when the test ends, if it still runs, and its log
// is shown if the test failed.
func Start(t testing.TB, args ...string) *Node {
	t.Helper()
	n, err := quotadproc.Start(context.Background(), Binary(t), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Kill()
		if t.Failed() {
			t.Logf("quotad log:\n%s", n.Log())
		}
	})
	return &Node{n}
}

// Stop sends SIGTERM and waits for the process to exit, returning its exit code.
func (n *Node) Stop(t testing.TB, within time.Duration) int {
	t.Helper()
	code, err := n.Node.Stop(within)
	if err != nil {
		t.Fatalf("%v:\n%s", err, n.Log())
	}
	return code
}
