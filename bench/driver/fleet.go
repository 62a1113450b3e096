package driver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
)

// serviceProc is one running service process.
type serviceProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// fleet is the service processes of one mode's run.
type fleet struct {
	procs []*serviceProc
}

// startFleet starts one process per spec with newCmd, sends each its spec, and
// waits until every one is ready.
func startFleet(ctx context.Context, newCmd func(ctx context.Context) *exec.Cmd, specs []ServiceSpec) (*fleet, error) {
	f := &fleet{}
	for _, spec := range specs {
		p, err := startService(ctx, newCmd, spec)
		if err != nil {
			f.kill()
			return nil, fmt.Errorf("service %s: %w", spec.Name, err)
		}
		f.procs = append(f.procs, p)
	}
	return f, nil
}

func startService(ctx context.Context, newCmd func(ctx context.Context) *exec.Cmd, spec ServiceSpec) (*serviceProc, error) {
	cmd := newCmd(ctx)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting: %w", err)
	}
	p := &serviceProc{cmd: cmd, stdin: stdin, out: bufio.NewReaderSize(stdout, 1<<20)}
	line, err := json.Marshal(spec)
	if err == nil {
		_, err = fmt.Fprintf(stdin, "%s\n", line)
	}
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("sending the spec: %w", err)
	}
	ready, err := p.out.ReadString('\n')
	if err != nil || strings.TrimSpace(ready) != "ready" {
		p.kill()
		return nil, fmt.Errorf("not ready: got %q: %v", ready, err)
	}
	return p, nil
}

// start lets every service go at once.
func (f *fleet) start() error {
	var errs []error
	for _, p := range f.procs {
		if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
			errs = append(errs, fmt.Errorf("starting a service: %w", err))
		}
	}
	return errors.Join(errs...)
}

// wait collects every service's result and waits for the processes to exit.
func (f *fleet) wait() ([]ServiceResult, error) {
	results := make([]ServiceResult, len(f.procs))
	errs := make([]error, len(f.procs))
	var wg sync.WaitGroup
	for i, p := range f.procs {
		wg.Go(func() {
			if err := json.NewDecoder(p.out).Decode(&results[i]); err != nil {
				errs[i] = fmt.Errorf("service %d: reading its result: %w", i, err)
			}
			p.stdin.Close()
			if err := p.cmd.Wait(); err != nil && errs[i] == nil {
				errs[i] = fmt.Errorf("service %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	return results, errors.Join(errs...)
}

// kill ends every process.
func (f *fleet) kill() {
	for _, p := range f.procs {
		p.kill()
	}
}

func (p *serviceProc) kill() {
	p.stdin.Close()
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}
