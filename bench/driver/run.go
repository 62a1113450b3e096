package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/quotad/quotad/bench/providersim"
)

// The simulator pool every service shares, and the quotad pool mirroring it.
const (
	apiKey    = "sk-bench-shared"
	model     = "gpt-4o-mini"
	benchPool = "openai/bench/gpt-4o-mini"
)

// Options are how Run starts its processes.
type Options struct {
	// QuotadBin is the quotad binary (needed for ModeQuotad).
	QuotadBin string
	// ServiceCommand returns a command that runs ServeService on its standard
	// input and output (the benchmark binary's service entry point). Its
	// standard error is left to the caller.
	ServiceCommand func(ctx context.Context) *exec.Cmd
	// Modes to run, in order; nil means AllModes.
	Modes []Mode
	// Progress receives a line per step; nil discards them.
	Progress io.Writer
	// TraceDir, when set, receives per mode the simulator's event log
	// (SCENARIO-MODE-events.json) and every call's Record
	// (SCENARIO-MODE-records.json), for looking into a run.
	TraceDir string
}

// ScenarioResult is the outcome of every mode of one scenario.
type ScenarioResult struct {
	Scenario Scenario     `json:"scenario"`
	Modes    []ModeResult `json:"modes"`
}

// Run runs every mode of sc against one simulator, reset (its buckets full)
// before each mode, and returns their results.
func Run(ctx context.Context, sc Scenario, opts Options) (ScenarioResult, error) {
	if err := sc.Validate(); err != nil {
		return ScenarioResult{}, err
	}
	modes := opts.Modes
	if modes == nil {
		modes = AllModes
	}
	sim, err := providersim.New(sc.simConfig())
	if err != nil {
		return ScenarioResult{}, fmt.Errorf("simulator: %w", err)
	}
	url, stop, err := serveSim(sim)
	if err != nil {
		return ScenarioResult{}, err
	}
	defer stop()

	res := ScenarioResult{Scenario: sc}
	for _, m := range modes {
		progress(opts.Progress, "%s: running mode %s (%d services x %d tasks x %d calls)",
			sc.Name, m, sc.Services, sc.Tasks, sc.CallsPerTask)
		mr, err := runMode(ctx, sc, m, sim, url, opts)
		if err != nil {
			return res, fmt.Errorf("%s, mode %s: %w", sc.Name, m, err)
		}
		progress(opts.Progress, "%s: mode %s done in %.1fs: %d completed, %d failed, %d provider 429s",
			sc.Name, m, mr.JobSeconds, mr.Completed, mr.Failed, mr.Provider429)
		res.Modes = append(res.Modes, mr)
	}
	return res, nil
}

// runMode runs sc's fleet once in mode m.
func runMode(ctx context.Context, sc Scenario, m Mode, sim *providersim.Server, simURL string, opts Options) (ModeResult, error) {
	ctx, cancel := context.WithTimeout(ctx, sc.Timeout+time.Minute)
	defer cancel()
	specs := make([]ServiceSpec, sc.Services)
	for i := range specs {
		specs[i] = ServiceSpec{Mode: m, Index: i, Name: fmt.Sprintf("svc-%d", i), Scenario: sc,
			SimURL: simURL, APIKey: apiKey, Model: model}
	}
	var node quotadService
	if m == ModeQuotad {
		dir, err := os.MkdirTemp("", "quotad-bench-")
		if err != nil {
			return ModeResult{}, fmt.Errorf("temp dir: %w", err)
		}
		defer os.RemoveAll(dir)
		var addrsOf func(service int) []string
		if sc.QuotadNodes > 1 {
			c, err := startFormedCluster(ctx, opts.QuotadBin, dir, sc.QuotadNodes, sc.poolYAML(benchPool), 1)
			if err != nil {
				return ModeResult{}, err
			}
			node = c
			progress(opts.Progress, "%s: %d quotad nodes formed a cluster; pool %s owned by node %d",
				sc.Name, sc.QuotadNodes, benchPool, c.OwnerIndex(benchPool))
			// Services spread over the nodes, each failing over to the others.
			addrsOf = func(i int) []string { return c.AddrsFrom(i % sc.QuotadNodes) }
		} else {
			n, err := startQuotad(ctx, opts.QuotadBin, dir, sc.poolYAML(benchPool))
			if err != nil {
				return ModeResult{}, err
			}
			node = n
			addrsOf = func(int) []string { return []string{n.Addr} }
		}
		defer node.Stop()
		for i := range specs {
			specs[i].QuotadAddrs, specs[i].Pool = addrsOf(i), benchPool
		}
	}
	f, err := startFleet(ctx, opts.ServiceCommand, specs)
	if err != nil {
		return ModeResult{}, err
	}
	var cpu0 time.Duration
	if node != nil {
		if cpu0, err = node.CPU(); err != nil {
			f.kill()
			return ModeResult{}, err
		}
	}
	sim.Reset()
	start := time.Now()
	if err := f.start(); err != nil {
		f.kill()
		return ModeResult{}, err
	}
	results, err := f.wait()
	if err != nil {
		return ModeResult{}, err
	}
	wall := time.Since(start)
	in := modeInput{sc: sc, mode: m, records: flatten(results), stats: settledStats(sim)}
	if opts.TraceDir != "" {
		if err := writeTrace(opts.TraceDir, sc.Name+"-"+string(m), sim.Events(), in.records); err != nil {
			return ModeResult{}, err
		}
	}
	if node != nil {
		cpu1, err := node.CPU()
		if err != nil {
			return ModeResult{}, err
		}
		in.quotadCPU, in.wall = cpu1-cpu0, wall
	}
	return computeMode(in), nil
}

// settledStats returns the simulator's stats once every admitted request has
// settled (its response handler finishes just after the client has read it),
// or after a second.
func settledStats(sim *providersim.Server) providersim.Stats {
	deadline := time.Now().Add(time.Second)
	for {
		st := sim.Stats()
		if st.Totals.CompletedRequests >= st.Totals.AdmittedRequests || time.Now().After(deadline) {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// writeTrace writes the simulator's events and the calls' records of a run
// into dir, named after prefix.
func writeTrace(dir, prefix string, events []providersim.Event, records []Record) error {
	for name, v := range map[string]any{"events": events, "records": records} {
		data, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encoding the %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, prefix+"-"+name+".json"), data, 0o644); err != nil {
			return fmt.Errorf("writing the %s: %w", name, err)
		}
	}
	return nil
}

func flatten(results []ServiceResult) []Record {
	var out []Record
	for _, r := range results {
		out = append(out, r.Records...)
	}
	return out
}

// serveSim serves sim on a loopback port and returns its base URL and a stop
// function.
func serveSim(sim *providersim.Server) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("simulator listen: %w", err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "simulator:", err)
		}
	}()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}
	return "http://" + ln.Addr().String(), stop, nil
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}
