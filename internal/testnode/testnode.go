// Package testnode builds the quotad binary and runs it as a real process on
// loopback for end-to-end tests.
package testnode

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var build struct {
	once sync.Once
	path string
	err  error
}

// Binary builds ./cmd/quotad once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
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
	Addr        string // gRPC address
	MetricsAddr string // metrics address, when enabled
	cmd         *exec.Cmd
	exited      chan struct{}
	mu          sync.Mutex // guards log
	log         strings.Builder
}

var listenRE = regexp.MustCompile(`msg="?(quotad serving|metrics serving)"? .*?listen=([0-9.:\[\]]+)`)

// Start runs `quotad serve args...` and waits until it serves. The process is
// killed when the test ends, if it still runs.
func Start(t testing.TB, args ...string) *Node {
	t.Helper()
	cmd := exec.Command(Binary(t), append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &Node{cmd: cmd, exited: make(chan struct{})}
	ready := make(chan struct{})
	go n.readLog(stderr, ready)
	go func() {
		cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(func() {
		n.Kill()
		if t.Failed() {
			t.Logf("quotad log:\n%s", n.Log())
		}
	})
	select {
	case <-ready:
	case <-n.exited:
		t.Fatalf("quotad exited before serving:\n%s", n.Log())
	case <-time.After(20 * time.Second):
		t.Fatalf("quotad did not start serving within 20s:\n%s", n.Log())
	}
	return n
}

// readLog copies the process's log, noting its listen addresses. ready closes once
// the gRPC server serves.
func (n *Node) readLog(r io.Reader, ready chan struct{}) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		n.mu.Lock()
		n.log.WriteString(line + "\n")
		if m := listenRE.FindStringSubmatch(line); m != nil {
			if m[1] == "metrics serving" {
				n.MetricsAddr = m[2]
			} else {
				n.Addr = m[2]
			}
		}
		n.mu.Unlock()
		if strings.Contains(line, "quotad serving") {
			close(ready)
		}
	}
}

// Log returns what the process has logged so far.
func (n *Node) Log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.log.String()
}

// Stop sends SIGTERM and waits for the process to exit, returning its exit code.
func (n *Node) Stop(t testing.TB, within time.Duration) int {
	t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		return n.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("quotad did not exit within %v of SIGTERM:\n%s", within, n.Log())
		return -1
	}
}

// Kill ends the process at once (kill -9) and waits for it.
func (n *Node) Kill() {
	n.cmd.Process.Kill()
	<-n.exited
}
