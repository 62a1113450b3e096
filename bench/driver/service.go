package driver

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	quotad "github.com/quotad/quotad/clients/go"
)

// ServiceSpec is what a service process runs, sent by the parent as one JSON
// line on the service's standard input.
type ServiceSpec struct {
	Mode     Mode     `json:"mode"`
	Index    int      `json:"index"`
	Name     string   `json:"name"`
	Scenario Scenario `json:"scenario"`
	// SimURL is the simulator's base URL; APIKey and Model name its pool.
	SimURL string `json:"sim_url"`
	APIKey string `json:"api_key"`
	Model  string `json:"model"`
	// QuotadAddrs and Pool are set in ModeQuotad: the node the service calls,
	// then the nodes it fails over to (against a cluster).
	QuotadAddrs []string `json:"quotad_addrs,omitempty"`
	Pool        string   `json:"pool,omitempty"`
}

// Record is what happened to one call. Times are Unix nanoseconds.
type Record struct {
	Service int `json:"service"`
	Task    int `json:"task"`
	// Want is when the task wanted to call; Sent is when the attempt that
	// succeeded was sent (0 if none did); Done is when the call ended.
	Want int64 `json:"want"`
	Sent int64 `json:"sent,omitempty"`
	Done int64 `json:"done"`
	OK   bool  `json:"ok"`
	// Attempts counts the requests sent; RateLimited those answered 429.
	Attempts    int `json:"attempts"`
	RateLimited int `json:"rate_limited"`
	// Usage from the response body of the call that succeeded.
	InputTokens  int64 `json:"input_tokens,omitempty"`
	OutputTokens int64 `json:"output_tokens,omitempty"`
	// In ModeQuotad: the round trips (ns) of the Acquire of the successful
	// attempt and of its Report, and the wait quotad says it imposed.
	AcquireRTT int64  `json:"acquire_rtt,omitempty"`
	Waited     int64  `json:"waited,omitempty"`
	ReportRTT  int64  `json:"report_rtt,omitempty"`
	Err        string `json:"err,omitempty"`
	// Refusal is the provider's message on the call's first 429.
	Refusal string `json:"refusal,omitempty"`
}

// refused notes a 429 answered to one of the call's attempts.
func (r *Record) refused(resp response) {
	r.RateLimited++
	if r.Refusal == "" {
		r.Refusal = resp.errMessage
	}
}

// ServiceResult is what a service process writes back: one Record per call.
type ServiceResult struct {
	Records []Record `json:"records"`
}

// ServeService is the body of a service process. It reads a ServiceSpec line
// from in, prepares (dials quotad), writes "ready", waits for a "go" line, runs
// every task, and writes its ServiceResult as JSON to out.
func ServeService(ctx context.Context, in io.Reader, out io.Writer) error {
	r := bufio.NewReader(in)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("reading the spec: %w", err)
	}
	var spec ServiceSpec
	if err := json.Unmarshal(line, &spec); err != nil {
		return fmt.Errorf("decoding the spec: %w", err)
	}
	caller, closeCaller, err := newCaller(ctx, spec)
	if err != nil {
		return err
	}
	defer closeCaller()
	if _, err := fmt.Fprintln(out, "ready"); err != nil {
		return fmt.Errorf("announcing ready: %w", err)
	}
	if line, err := r.ReadString('\n'); err != nil || strings.TrimSpace(line) != "go" {
		return fmt.Errorf("waiting for go: got %q, %v", line, err)
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Scenario.Timeout)
	defer cancel()
	res := runTasks(ctx, spec, caller)
	if err := json.NewEncoder(out).Encode(res); err != nil {
		return fmt.Errorf("writing the result: %w", err)
	}
	return nil
}

// runTasks runs the spec's tasks concurrently, each making its calls in turn.
func runTasks(ctx context.Context, spec ServiceSpec, caller callFunc) ServiceResult {
	sc := spec.Scenario
	perTask := make([][]Record, sc.Tasks)
	var wg sync.WaitGroup
	for t := range sc.Tasks {
		wg.Go(func() {
			for _, c := range sc.Workload.calls(sc.Seed, spec.Index, t, sc.CallsPerTask) {
				rec := Record{Service: spec.Index, Task: t, Want: time.Now().UnixNano()}
				caller(ctx, c, &rec)
				rec.Done = time.Now().UnixNano()
				perTask[t] = append(perTask[t], rec)
			}
		})
	}
	wg.Wait()
	var res ServiceResult
	for _, recs := range perTask {
		res.Records = append(res.Records, recs...)
	}
	return res
}

// callFunc makes one call of the workload in some mode, filling in rec.
type callFunc func(ctx context.Context, c Call, rec *Record)

// newCaller returns the call function of spec's mode and what to close after.
func newCaller(ctx context.Context, spec ServiceSpec) (callFunc, func(), error) {
	p := &provider{
		url:    strings.TrimSuffix(spec.SimURL, "/") + "/v1/chat/completions",
		apiKey: spec.APIKey,
		model:  spec.Model,
		http: &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: spec.Scenario.Tasks,
		}},
	}
	closeHTTP := func() { p.http.CloseIdleConnections() }
	retry := SDKRetry{MaxRetries: spec.Scenario.MaxRetries}
	switch spec.Mode {
	case ModeNone:
		return func(ctx context.Context, c Call, rec *Record) { retry.call(ctx, p, c, rec) }, closeHTTP, nil
	case ModeSemaphore:
		sem := make(chan struct{}, spec.Scenario.Semaphore)
		return func(ctx context.Context, c Call, rec *Record) {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				rec.Err = ctx.Err().Error()
				return
			}
			defer func() { <-sem }()
			retry.call(ctx, p, c, rec)
		}, closeHTTP, nil
	case ModeQuotad:
		client, err := quotad.Dial(ctx, spec.QuotadAddrs)
		if err != nil {
			return nil, nil, fmt.Errorf("dialing quotad: %w", err)
		}
		q := &quotadCaller{client: client, pool: spec.Pool, tenant: spec.Name, maxRetries: spec.Scenario.MaxRetries,
			headers: spec.Scenario.ReportHeaders, p: p}
		return q.call, func() { client.Close(); closeHTTP() }, nil
	}
	return nil, nil, fmt.Errorf("unknown mode %q", spec.Mode)
}
