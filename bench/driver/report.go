package driver

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// Results is everything one benchmark run measured, as written to JSON.
type Results struct {
	Date       time.Time         `json:"date"`
	Machine    Machine           `json:"machine"`
	Scenarios  []ScenarioResult  `json:"scenarios"`
	Throughput *ThroughputResult `json:"throughput,omitempty"`
	// The cluster scenarios: accuracy and failover loads, forwarding cost.
	ClusterLoads []ClusterLoadResult `json:"cluster_loads,omitempty"`
	Forward      *ForwardResult      `json:"forward,omitempty"`
}

// Machine describes where the results were measured.
type Machine struct {
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model,omitempty"`
	GoVersion string `json:"go_version"`
}

// ThisMachine describes the machine this process runs on.
func ThisMachine() Machine {
	return Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(),
		CPUModel: cpuModel(), GoVersion: runtime.Version()}
}

// cpuModel returns the first "model name" of /proc/cpuinfo, or "".
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(data)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// String is the machine in one line.
func (m Machine) String() string {
	s := fmt.Sprintf("%s/%s, %d CPUs, %s", m.OS, m.Arch, m.CPUs, m.GoVersion)
	if m.CPUModel != "" {
		s += ", " + m.CPUModel
	}
	return s
}

// WriteTable writes r as Markdown tables: the cluster scenarios, then one per
// fleet scenario with its modes side by side, then the throughput scenario.
func WriteTable(w io.Writer, r Results) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s on %s.\n", r.Date.UTC().Format("2006-01-02 15:04 MST"), r.Machine)
	writeClusterLoads(&b, r.ClusterLoads)
	if r.Forward != nil {
		writeForward(&b, *r.Forward)
	}
	for _, sr := range r.Scenarios {
		writeScenario(&b, sr)
	}
	if r.Throughput != nil {
		writeThroughput(&b, *r.Throughput)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeScenario(b *strings.Builder, sr ScenarioResult) {
	sc := sr.Scenario
	fmt.Fprintf(b, "\n### %s: %d services × %d tasks × %d calls, one key at %d requests and %d tokens per %v\n\n",
		sc.Name, sc.Services, sc.Tasks, sc.CallsPerTask, sc.Requests, sc.Tokens, sc.Period)
	b.WriteString("| |")
	for _, m := range sr.Modes {
		if m.Mode == ModeQuotad && sc.QuotadNodes > 1 {
			fmt.Fprintf(b, " %s (%d nodes) |", m.Mode, sc.QuotadNodes)
			continue
		}
		fmt.Fprintf(b, " %s |", m.Mode)
	}
	b.WriteString("\n|---|")
	for range sr.Modes {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, row := range scenarioRows(sc) {
		fmt.Fprintf(b, "| %s |", row.name)
		for _, m := range sr.Modes {
			fmt.Fprintf(b, " %s |", row.value(m))
		}
		b.WriteString("\n")
	}
}

type row struct {
	name  string
	value func(ModeResult) string
}

func scenarioRows(sc Scenario) []row {
	quotadOnly := func(f func(ModeResult) string) func(ModeResult) string {
		return func(m ModeResult) string {
			if m.Mode != ModeQuotad {
				return "–"
			}
			return f(m)
		}
	}
	windowed := func(f func(ModeResult) string) func(ModeResult) string {
		return func(m ModeResult) string {
			if m.WindowEnd <= m.WindowStart {
				return "n/a"
			}
			return f(m)
		}
	}
	return []row{
		{"provider 429s", func(m ModeResult) string { return fmt.Sprint(m.Provider429) }},
		{"calls completed / failed", func(m ModeResult) string { return fmt.Sprintf("%d / %d", m.Completed, m.Failed) }},
		{"requests sent", func(m ModeResult) string { return fmt.Sprint(m.Attempts) }},
		{"tokens settled (admitted)", func(m ModeResult) string {
			return fmt.Sprintf("%d (%d)", m.SettledTokens, m.AdmittedTokens)
		}},
		{"steady window", func(m ModeResult) string {
			if m.WindowEnd <= m.WindowStart {
				return "none: ended in the warm-up"
			}
			return fmt.Sprintf("%ds–%ds", m.WindowStart, m.WindowEnd)
		}},
		{fmt.Sprintf("RPM utilization (limit %d)", sc.Requests), windowed(func(m ModeResult) string { return pct(m.RequestUtilization) })},
		{fmt.Sprintf("TPM utilization (limit %d)", sc.Tokens), windowed(func(m ModeResult) string { return pct(m.TokenUtilization) })},
		{"job completion", func(m ModeResult) string { return fmt.Sprintf("%.1f s", m.JobSeconds) }},
		{"whole job: used / full bucket + refill", func(m ModeResult) string { return pct(m.JobUtilization) }},
		{"want→called p50 / p99", func(m ModeResult) string {
			return fmt.Sprintf("%s / %s", ms(m.WantToCallP50), ms(m.WantToCallP99))
		}},
		{"fairness (Jain, tokens per service)", func(m ModeResult) string { return fmt.Sprintf("%.3f", m.Fairness) }},
		{"Acquire p50 / p99, calls not queued (n)", quotadOnly(func(m ModeResult) string {
			if m.AcquireNoWait == 0 {
				return "(0)"
			}
			return fmt.Sprintf("%s / %s (%d)", ms(m.AcquireP50), ms(m.AcquireP99), m.AcquireNoWait)
		})},
		{"Acquire p50 / p99, round trip − queue wait", quotadOnly(func(m ModeResult) string {
			return fmt.Sprintf("%s / %s", ms(m.AcquireOverheadP50), ms(m.AcquireOverheadP99))
		})},
		{"Report p50 / p99", quotadOnly(func(m ModeResult) string {
			return fmt.Sprintf("%s / %s", ms(m.ReportP50), ms(m.ReportP99))
		})},
		{"quotad CPU", quotadOnly(func(m ModeResult) string {
			return fmt.Sprintf("%.2f s (%.1f%%)", m.QuotadCPUSeconds, m.QuotadCPUPercent)
		})},
	}
}

func writeThroughput(b *strings.Builder, t ThroughputResult) {
	fmt.Fprintf(b, "\n### throughput: one quotad node, %d concurrent callers, %v per loop\n\n", t.Scenario.Callers, t.Scenario.Duration)
	b.WriteString("| | per second | p50 | p99 | quotad CPU (cores) |\n|---|---:|---:|---:|---:|\n")
	for _, r := range []struct {
		name string
		Rate
	}{{"gRPC health check", t.Health}, {"Acquire+Report", t.AcquireReport}} {
		fmt.Fprintf(b, "| %s | %.0f | %s | %s | %.2f |\n", r.name, r.PerSecond, ms(r.P50), ms(r.P99), r.QuotadCPUs)
	}
}

func pct(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }

// ms formats d in milliseconds, with more digits below 10 ms.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	if v < 10 {
		return fmt.Sprintf("%.2f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}
