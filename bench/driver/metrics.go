package driver

import (
	"maps"
	"math"
	"slices"
	"time"

	"github.com/quotad/quotad/bench/providersim"
)

// ModeResult is what one mode of a scenario measured. Times are relative to
// the start of the run (the simulator's reset, when every service was let go).
type ModeResult struct {
	Mode Mode `json:"mode"`

	// Calls = Completed + Failed. Attempts counts every request sent.
	Calls     int `json:"calls"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
	Attempts  int `json:"attempts"`
	// Provider429 counts the simulator's refusals.
	Provider429 int64 `json:"provider_429"`
	// Provider429ByReason splits them by the bucket that refused.
	Provider429ByReason map[string]int64 `json:"provider_429_by_reason,omitempty"`
	// Refusals holds the provider's message of a few 429s (the first of a call).
	Refusals []string `json:"refusals,omitempty"`
	// Errors counts the distinct reasons calls failed.
	Errors map[string]int `json:"errors,omitempty"`

	// Simulator totals: requests admitted, tokens charged at admission
	// (estimates) and settled (actual usage).
	AdmittedRequests int64 `json:"admitted_requests"`
	AdmittedTokens   int64 `json:"admitted_tokens"`
	SettledTokens    int64 `json:"settled_tokens"`

	// The steady-state window, in whole seconds [WindowStart, WindowEnd): from
	// the end of the warm-up to the second of the last admission (after it only
	// the drain is left). Utilization is what the simulator settled in the
	// window (completed requests; actual tokens) over what the limits allow in
	// it; Utilization is the larger of the two, the binding limit's.
	WindowStart        int64   `json:"window_start_s"`
	WindowEnd          int64   `json:"window_end_s"`
	RequestUtilization float64 `json:"request_utilization"`
	TokenUtilization   float64 `json:"token_utilization"`
	Utilization        float64 `json:"utilization"`

	// JobUtilization is the settled tokens (or completed requests, whichever
	// is higher) over all the key could serve during the whole job: its full
	// bucket at the start plus its refill until the job ended.
	JobUtilization float64 `json:"job_utilization"`

	// JobSeconds is when the last call ended.
	JobSeconds float64 `json:"job_seconds"`
	// WantToCall is the time from "want to call" to sending the request that
	// succeeded, over completed calls (limiter wait, semaphore, retries).
	WantToCallP50 time.Duration `json:"want_to_call_p50"`
	WantToCallP99 time.Duration `json:"want_to_call_p99"`
	// Fairness is Jain's index over the services' actual tokens of calls
	// completed in the window (1 = equal shares, 1/services = one took all;
	// every call when the window is empty).
	Fairness float64 `json:"fairness"`

	// ModeQuotad only: Acquire round trips of calls quotad granted without a
	// wait (their count: AcquireNoWait); Acquire round trips less the wait
	// quotad says it imposed, over every call (the decision's own latency);
	// Report round trips of every call; the CPU time of the quotad process
	// during the run.
	AcquireNoWait      int           `json:"acquire_no_wait,omitempty"`
	AcquireP50         time.Duration `json:"acquire_p50,omitempty"`
	AcquireP99         time.Duration `json:"acquire_p99,omitempty"`
	AcquireOverheadP50 time.Duration `json:"acquire_overhead_p50,omitempty"`
	AcquireOverheadP99 time.Duration `json:"acquire_overhead_p99,omitempty"`
	ReportP50          time.Duration `json:"report_p50,omitempty"`
	ReportP99          time.Duration `json:"report_p99,omitempty"`
	QuotadCPUSeconds   float64       `json:"quotad_cpu_seconds,omitempty"`
	QuotadCPUPercent   float64       `json:"quotad_cpu_percent,omitempty"`
}

// maxRefusals bounds ModeResult.Refusals.
const maxRefusals = 5

// modeInput is what a mode's result is computed from.
type modeInput struct {
	sc        Scenario
	mode      Mode
	records   []Record
	stats     providersim.Stats
	quotadCPU time.Duration // ModeQuotad only
	wall      time.Duration // ModeQuotad only
}

// computeMode turns a run's records and the simulator's stats into a result.
func computeMode(in modeInput) ModeResult {
	t0 := in.stats.Start.UnixNano()
	tot := in.stats.Totals
	r := ModeResult{
		Mode:                in.mode,
		Calls:               len(in.records),
		Provider429:         tot.RefusedRequests,
		Provider429ByReason: tot.Refused,
		AdmittedRequests:    tot.AdmittedRequests,
		AdmittedTokens:      tot.AdmittedInputTokens + tot.AdmittedOutputTokens,
		SettledTokens:       tot.SettledInputTokens + tot.SettledOutputTokens,
	}
	r.WindowStart, r.WindowEnd = steadyWindow(in.stats.Series, in.sc.Warmup)
	r.RequestUtilization, r.TokenUtilization = utilization(in.sc, in.stats.Series, r.WindowStart, r.WindowEnd)
	r.Utilization = max(r.RequestUtilization, r.TokenUtilization)

	// Fairness counts the calls completed in the window, or all of them when
	// the window is empty.
	windowed := r.WindowEnd > r.WindowStart
	var want, acquire, overhead, report []time.Duration
	var last int64
	perService := map[int]float64{}
	for i := range in.sc.Services {
		perService[i] = 0
	}
	for _, rec := range in.records {
		r.Attempts += rec.Attempts
		if rec.Refusal != "" && len(r.Refusals) < maxRefusals {
			r.Refusals = append(r.Refusals, rec.Refusal)
		}
		last = max(last, rec.Done-t0)
		if !rec.OK {
			r.Failed++
			if r.Errors == nil {
				r.Errors = map[string]int{}
			}
			r.Errors[rec.Err]++
			continue
		}
		r.Completed++
		want = append(want, time.Duration(rec.Sent-rec.Want))
		if s := (rec.Done - t0) / int64(time.Second); !windowed || s >= r.WindowStart && s < r.WindowEnd {
			perService[rec.Service] += float64(rec.InputTokens + rec.OutputTokens)
		}
		if in.mode == ModeQuotad {
			report = append(report, time.Duration(rec.ReportRTT))
			overhead = append(overhead, time.Duration(rec.AcquireRTT-rec.Waited))
			if rec.Waited == 0 {
				acquire = append(acquire, time.Duration(rec.AcquireRTT))
			}
		}
	}
	r.JobSeconds = float64(last) / float64(time.Second)
	r.JobUtilization = jobUtilization(in.sc, tot, time.Duration(last))
	r.WantToCallP50, r.WantToCallP99 = percentile(want, 0.50), percentile(want, 0.99)
	r.Fairness = jain(slices.Collect(maps.Values(perService)))
	if in.mode == ModeQuotad {
		r.AcquireNoWait = len(acquire)
		r.AcquireP50, r.AcquireP99 = percentile(acquire, 0.50), percentile(acquire, 0.99)
		r.AcquireOverheadP50, r.AcquireOverheadP99 = percentile(overhead, 0.50), percentile(overhead, 0.99)
		r.ReportP50, r.ReportP99 = percentile(report, 0.50), percentile(report, 0.99)
		r.QuotadCPUSeconds = in.quotadCPU.Seconds()
		if in.wall > 0 {
			r.QuotadCPUPercent = 100 * in.quotadCPU.Seconds() / in.wall.Seconds()
		}
	}
	return r
}

// steadyWindow returns [start, end) in whole seconds: start is the warm-up
// rounded up, end the second of the last admission, left out because only part
// of it was busy. The window is empty (start == end) when nothing was admitted
// after the warm-up.
func steadyWindow(series []providersim.Second, warmup time.Duration) (start, end int64) {
	start = int64((warmup + time.Second - 1) / time.Second)
	for _, s := range series {
		if s.AdmittedRequests > 0 {
			end = max(end, s.Second)
		}
	}
	return start, max(start, end)
}

// utilization returns the completed requests and settled tokens of the
// seconds [start, end) as fractions of what sc's limits allow in that time.
func utilization(sc Scenario, series []providersim.Second, start, end int64) (requests, tokens float64) {
	if end <= start {
		return 0, 0
	}
	var req, tok int64
	for _, s := range series {
		if s.Second >= start && s.Second < end {
			req += s.CompletedRequests
			tok += s.SettledInputTokens + s.SettledOutputTokens
		}
	}
	periods := float64(end-start) * float64(time.Second) / float64(sc.Period)
	return float64(req) / (float64(sc.Requests) * periods), float64(tok) / (float64(sc.Tokens) * periods)
}

// jobUtilization returns the larger of completed requests and settled tokens
// as fractions of what sc's key could serve in a job of length d: a full bucket
// plus d's refill.
func jobUtilization(sc Scenario, tot providersim.Totals, d time.Duration) float64 {
	periods := float64(d) / float64(sc.Period)
	req := float64(tot.CompletedRequests) / (float64(sc.Requests) * (1 + periods))
	tok := float64(tot.SettledInputTokens+tot.SettledOutputTokens) / (float64(sc.Tokens) * (1 + periods))
	return max(req, tok)
}

// percentile returns the nearest-rank q-quantile of ds (0 when empty).
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// jain returns Jain's fairness index of xs: (Σx)² / (n·Σx²), 1 when every x is
// equal (also when all are 0) and 1/n when one x holds everything.
func jain(xs []float64) float64 {
	var sum, sq float64
	for _, x := range xs {
		sum += x
		sq += x * x
	}
	if sq == 0 {
		return 1
	}
	return sum * sum / (float64(len(xs)) * sq)
}
