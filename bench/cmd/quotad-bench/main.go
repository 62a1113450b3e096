// Command quotad-bench runs quotad's benchmark scenarios against the provider
// simulator and prints one results table (Markdown), writing the results as
// JSON too.
//
// Usage:
//
//	quotad-bench [-scenarios standard,throughput] [-modes none,semaphore,quotad]
//	             [-quotad PATH] [-json FILE] [-calls N] [-seed N] [-quotad-initial LEVEL]
//	             [-quotad-nodes N] [-report-headers] [-trace DIR]
//
// Scenarios: standard and smoke (fleets of service processes, every mode side
// by side; see bench/driver; with -quotad-nodes 3 the quotad mode runs against
// a 3-node cluster), throughput (one quotad node's Acquire+Report rate beside a
// gRPC health-check rate), and the cluster scenarios on 3 nodes:
// cluster-accuracy (gubernator's accuracy load), cluster-failover (the same
// load, the pool's owner killed with kill -9, then in a second run stopped with
// SIGTERM; cluster-failover-kill and cluster-failover-term run one of them) and
// cluster-forward (local against forwarded calls). -quotad
// defaults to the quotad binary next to this one. Progress goes to stderr.
//
// `quotad-bench service` is a service process of a fleet: it reads its spec on
// stdin (see driver.ServeService) and is started by quotad-bench itself.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/quotad/quotad/bench/driver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "service" {
		err = driver.ServeService(ctx, os.Stdin, os.Stdout)
	} else {
		err = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "quotad-bench:", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	scenarios []string
	modes     []driver.Mode
	quotadBin string
	jsonPath  string
	calls     int
	seed      uint64
	initial   string
	headers   bool
	traceDir  string
	nodes     int
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("quotad-bench", flag.ContinueOnError)
	scenarios := fs.String("scenarios", "standard,throughput", "scenarios to run, comma-separated: standard, smoke, throughput, cluster-accuracy, cluster-failover (or one of its runs: cluster-failover-kill, cluster-failover-term), cluster-forward")
	modes := fs.String("modes", "none,semaphore,quotad", "modes of the fleet scenarios, comma-separated")
	var c config
	fs.StringVar(&c.quotadBin, "quotad", "", "quotad binary (default: quotad next to this binary)")
	fs.StringVar(&c.jsonPath, "json", "", "write the results as JSON to this file")
	fs.IntVar(&c.calls, "calls", 0, "calls per task (0: the scenario's own)")
	fs.Uint64Var(&c.seed, "seed", 0, "workload and simulator seed (0: the scenario's own)")
	fs.StringVar(&c.traceDir, "trace", "", "write the simulator's events and every call's record of each mode into this directory")
	fs.BoolVar(&c.headers, "report-headers", false, "quotad mode: send the provider's rate-limit headers with every Report")
	fs.IntVar(&c.nodes, "quotad-nodes", 1, "standard and smoke: run the quotad mode against a cluster of this many nodes")
	fs.StringVar(&c.initial, "quotad-initial", "", "initial level of the quotad pool's buckets: empty, full or a fraction (default: quotad's default)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c.scenarios = strings.Split(*scenarios, ",")
	for _, s := range strings.Split(*modes, ",") {
		m, err := driver.ParseMode(s)
		if err != nil {
			return c, err
		}
		c.modes = append(c.modes, m)
	}
	if c.quotadBin == "" {
		exe, err := os.Executable()
		if err != nil {
			return c, fmt.Errorf("finding the quotad binary: %w", err)
		}
		c.quotadBin = filepath.Join(filepath.Dir(exe), "quotad")
	}
	return c, nil
}

// run runs the scenarios of args, printing the table on out and progress on
// logw.
func run(ctx context.Context, args []string, out, logw io.Writer) error {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	if _, err := os.Stat(c.quotadBin); err != nil {
		return fmt.Errorf("quotad binary: %w (build it with `make build` or pass -quotad)", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary: %w", err)
	}
	opts := driver.Options{
		QuotadBin: c.quotadBin,
		Modes:     c.modes,
		Progress:  logw,
		TraceDir:  c.traceDir,
		ServiceCommand: func(ctx context.Context) *exec.Cmd {
			cmd := exec.CommandContext(ctx, exe, "service")
			cmd.Stderr = logw
			return cmd
		},
	}
	res := driver.Results{Date: time.Now(), Machine: driver.ThisMachine()}
	known := driver.Scenarios()
	for _, name := range c.scenarios {
		switch name {
		case "cluster-accuracy", "cluster-failover", "cluster-failover-kill", "cluster-failover-term":
			loads := map[string][]driver.ClusterLoad{
				"cluster-accuracy":      {driver.ClusterAccuracy()},
				"cluster-failover":      {driver.ClusterFailover(), driver.ClusterLeave()},
				"cluster-failover-kill": {driver.ClusterFailover()},
				"cluster-failover-term": {driver.ClusterLeave()},
			}[name]
			for _, cl := range loads {
				fmt.Fprintf(logw, "%s: %d nodes x %d workers, %d requests per %v, %v\n", cl.Name, cl.Nodes, cl.WorkersPerNode, cl.Limit, cl.Period, cl.Duration)
				r, err := driver.RunClusterLoad(ctx, cl, c.quotadBin, logw)
				if err != nil {
					return fmt.Errorf("%s: %w", cl.Name, err)
				}
				for reason, n := range r.Errors {
					fmt.Fprintf(logw, "%s: %d Acquire errors: %s\n", cl.Name, n, reason)
				}
				for reason, n := range r.ReportErrors {
					fmt.Fprintf(logw, "%s: %d Report errors: %s\n", cl.Name, n, reason)
				}
				res.ClusterLoads = append(res.ClusterLoads, r)
			}
			continue
		case "cluster-forward":
			r, err := driver.RunClusterForward(ctx, driver.StandardClusterForward(), c.quotadBin, logw)
			if err != nil {
				return fmt.Errorf("cluster-forward: %w", err)
			}
			res.Forward = &r
			continue
		}
		if name == "throughput" {
			tp := driver.StandardThroughput()
			fmt.Fprintf(logw, "throughput: %d callers, %v per loop\n", tp.Callers, tp.Duration)
			r, err := driver.RunThroughput(ctx, tp, c.quotadBin)
			if err != nil {
				return fmt.Errorf("throughput: %w", err)
			}
			res.Throughput = &r
			continue
		}
		sc, ok := known[name]
		if !ok {
			return fmt.Errorf("unknown scenario %q", name)
		}
		if c.calls > 0 {
			sc.CallsPerTask = c.calls
		}
		if c.seed > 0 {
			sc.Seed = c.seed
		}
		sc.QuotadInitial, sc.ReportHeaders = c.initial, c.headers
		if c.nodes > 1 {
			sc.QuotadNodes = c.nodes
		}
		sr, err := driver.Run(ctx, sc, opts)
		if err != nil {
			return err
		}
		res.Scenarios = append(res.Scenarios, sr)
	}
	if err := driver.WriteTable(out, res); err != nil {
		return fmt.Errorf("writing the table: %w", err)
	}
	return writeJSON(c.jsonPath, res)
}

// writeJSON writes res to path, unless path is empty.
func writeJSON(path string, res driver.Results) error {
	if path == "" {
		return nil
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the results: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the results: %w", err)
	}
	return nil
}
