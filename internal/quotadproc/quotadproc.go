// Package quotadproc runs the quotad binary as a process on loopback and tells
// when it serves: for end-to-end tests and the benchmark driver.
package quotadproc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StartTimeout bounds how long a process may take to serve.
const StartTimeout = 20 * time.Second

// Node is a running quotad process. Its methods are safe for concurrent use.
type Node struct {
	Addr        string // gRPC address
	MetricsAddr string // metrics address, when enabled
	cmd         *exec.Cmd
	exited      chan struct{}

	mu  sync.Mutex // guards log
	log strings.Builder
}

var listenRE = regexp.MustCompile(`msg="?(quotad serving|metrics serving)"? .*?listen=([0-9.:\[\]]+)`)

// Start runs `bin serve --listen 127.0.0.1:0 args...` and waits until it serves, the
// process exits, StartTimeout passes or ctx ends.
func Start(ctx context.Context, bin string, args ...string) (*Node, error) {
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("quotad stderr: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start quotad: %w", err)
	}
	n := &Node{cmd: cmd, exited: make(chan struct{})}
	ready := make(chan struct{})
	go n.readLog(stderr, ready)
	go func() {
		cmd.Wait()
		close(n.exited)
	}()
	select {
	case <-ready:
		return n, nil
	case <-n.exited:
		return nil, fmt.Errorf("quotad exited before serving:\n%s", n.Log())
	case <-time.After(StartTimeout):
	case <-ctx.Done():
	}
	n.Kill()
	return nil, fmt.Errorf("quotad did not serve within %v (%v):\n%s", StartTimeout, ctx.Err(), n.Log())
}

// readLog copies the process's log, noting its listen addresses; ready closes once
// the gRPC server serves (the metrics server, when on, is logged before it).
func (n *Node) readLog(r io.Reader, ready chan struct{}) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		n.mu.Lock()
		n.log.WriteString(line + "\n")
		m := listenRE.FindStringSubmatch(line)
		if m != nil && m[1] == "metrics serving" {
			n.MetricsAddr = m[2]
		} else if m != nil {
			n.Addr = m[2]
		}
		n.mu.Unlock()
		if m != nil && m[1] == "quotad serving" {
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

// Pid returns the process id.
func (n *Node) Pid() int { return n.cmd.Process.Pid }

// Stop sends SIGTERM and waits up to within for the process to exit. It returns
// the exit code, or an error (after a SIGKILL) if the process did not exit.
func (n *Node) Stop(within time.Duration) (int, error) {
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		return n.cmd.ProcessState.ExitCode(), nil
	case <-time.After(within):
		n.Kill()
		return -1, fmt.Errorf("quotad did not exit within %v of SIGTERM", within)
	}
}

// Kill ends the process at once (kill -9) and waits for it.
func (n *Node) Kill() {
	n.cmd.Process.Kill()
	<-n.exited
}
