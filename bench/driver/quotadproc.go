package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/quotad/quotad/internal/quotadproc"
)

// clockTicks is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100 on
// Linux for every architecture that Go supports).
const clockTicks = 100

// quotadService is quotad as a fleet uses it: one node or a cluster.
type quotadService interface {
	// CPU returns the CPU time its processes have used so far.
	CPU() (time.Duration, error)
	// Stop ends its processes.
	Stop()
}

// quotadNode is a quotad process serving one configuration on loopback.
type quotadNode struct {
	*quotadproc.Node
}

// startQuotad runs `bin serve` with the pools of yaml (written into dir) and
// waits until it serves.
func startQuotad(ctx context.Context, bin, dir, yaml string) (*quotadNode, error) {
	cfg := filepath.Join(dir, "quotad.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		return nil, fmt.Errorf("writing the quotad config: %w", err)
	}
	n, err := quotadproc.Start(ctx, bin, "--config", cfg, "--metrics-listen", "")
	if err != nil {
		return nil, err
	}
	return &quotadNode{n}, nil
}

// CPU returns the CPU time (user + system) the process has used so far.
func (n *quotadNode) CPU() (time.Duration, error) {
	return processCPU(n.Pid())
}

// Stop ends the process: SIGTERM, then SIGKILL after 5 s.
func (n *quotadNode) Stop() { n.Node.Stop(5 * time.Second) }

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
