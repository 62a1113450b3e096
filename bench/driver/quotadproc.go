package driver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100 on
// Linux for every architecture that Go supports).
const clockTicks = 100

// quotadStartTimeout bounds how long a quotad process may take to serve.
const quotadStartTimeout = 20 * time.Second

// quotadNode is a quotad process serving one configuration on loopback.
type quotadNode struct {
	Addr string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited

	mu  sync.Mutex // guards log
	log strings.Builder
}

var servingRE = regexp.MustCompile(`msg="?quotad serving"? .*?listen=([0-9.:\[\]]+)`)

// startQuotad runs `bin serve` with the pools of yaml (written into dir) and
// waits until it serves.
func startQuotad(ctx context.Context, bin, dir, yaml string) (*quotadNode, error) {
	cfg := filepath.Join(dir, "quotad.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		return nil, fmt.Errorf("writing the quotad config: %w", err)
	}
	cmd := exec.Command(bin, "serve", "--config", cfg, "--listen", "127.0.0.1:0", "--metrics-listen", "")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("quotad stderr: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting quotad: %w", err)
	}
	n := &quotadNode{cmd: cmd, done: make(chan struct{})}
	ready := make(chan string, 1)
	go n.readLog(stderr, ready)
	go func() {
		cmd.Wait()
		close(n.done)
	}()
	select {
	case n.Addr = <-ready:
		return n, nil
	case <-n.done:
		return nil, fmt.Errorf("quotad exited before serving:\n%s", n.Log())
	case <-time.After(quotadStartTimeout):
	case <-ctx.Done():
	}
	n.Stop()
	return nil, fmt.Errorf("quotad did not serve within %v: %w\n%s", quotadStartTimeout, ctx.Err(), n.Log())
}

// readLog keeps the process's log and sends its gRPC address on ready.
func (n *quotadNode) readLog(r io.Reader, ready chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		n.mu.Lock()
		n.log.WriteString(line + "\n")
		n.mu.Unlock()
		if m := servingRE.FindStringSubmatch(line); m != nil {
			select {
			case ready <- m[1]:
			default:
			}
		}
	}
}

// Log returns what the process has logged.
func (n *quotadNode) Log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.log.String()
}

// CPU returns the CPU time (user + system) the process has used so far.
func (n *quotadNode) CPU() (time.Duration, error) {
	return processCPU(n.cmd.Process.Pid)
}

// Stop sends SIGTERM, and SIGKILL if the process has not exited after 5 s.
func (n *quotadNode) Stop() {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(5 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
}

// processCPU reads utime + stime of process pid from /proc/PID/stat.
func processCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading process CPU: %w", err)
	}
	return parseStatCPU(string(data))
}

// parseStatCPU returns utime + stime from the text of /proc/PID/stat: fields 14
// and 15, counted after the command name, which is in parentheses and may
// itself hold spaces and parentheses.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("parsing /proc stat: no command name")
	}
	// After ") " come field 3 (state) onwards: utime is field 14, stime 15.
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, errors.New("parsing /proc stat: too few fields")
	}
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parsing /proc stat: %w", err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
