package driver

import (
	"fmt"
	"strings"
	"time"
)

// gubernator's figures, from the issue that asked for these benchmarks: its
// GLOBAL mode on the same load, and after its owner was killed.
const (
	gubernatorAccuracy = "18–58% over"
	gubernatorKillGap  = "errors for 37 s"
	gubernatorKillOver = "2× the limit in one minute (a full bucket after the errors)"
)

// writeClusterLoads writes the accuracy runs (no event) in one table, and the
// failover runs side by side in another.
func writeClusterLoads(b *strings.Builder, loads []ClusterLoadResult) {
	var steady, events []ClusterLoadResult
	for _, r := range loads {
		if r.Event == nil {
			steady = append(steady, r)
		} else {
			events = append(events, r)
		}
	}
	for _, r := range steady {
		cl := r.Scenario
		fmt.Fprintf(b, "\n### %s: %d nodes × %d workers, one pool of %d requests per %v, %v flat out\n\n",
			cl.Name, cl.Nodes, cl.WorkersPerNode, cl.Limit, cl.Period, cl.Duration)
		b.WriteString("| | quotad | gubernator GLOBAL (issue) |\n|---|---:|---:|\n")
		fmt.Fprintf(b, "| cluster formed after | %.2f s | |\n", r.FormedAfter.Seconds())
		fmt.Fprintf(b, "| granted / allowed (%s) | %s | |\n", allowedNote(r), grantedRatio(r.Granted, r.Allowed))
		fmt.Fprintf(b, "| grants per %v window (limit %d) | %s | |\n", cl.Period, cl.Limit, ints(r.Windows))
		fmt.Fprintf(b, "| largest window vs limit | %s | %s |\n", signedPct(r.WorstWindow), gubernatorAccuracy)
		fmt.Fprintf(b, "| reference bucket: lowest level (slack %.1f) | %s | |\n", r.Replay.Slack, lowest(r.Replay))
		fmt.Fprintf(b, "| granted over the limit | %d | |\n", r.Replay.OverLimit)
		fmt.Fprintf(b, "| grants counted by quotad (quotad_grants_total) | %s | |\n", serverGrants(r.ServerGrants))
		fmt.Fprintf(b, "| Acquire / Report errors | %d / %d | |\n", sum(r.Errors), sum(r.ReportErrors))
	}
	if len(events) == 0 {
		return
	}
	cl := events[0].Scenario
	fmt.Fprintf(b, "\n### cluster failover: %d nodes × %d workers, one pool of %d requests per %v, the pool's owner stopped %v in\n\n",
		cl.Nodes, cl.WorkersPerNode, cl.Limit, cl.Period, cl.EventAt)
	b.WriteString("| |")
	for _, r := range events {
		fmt.Fprintf(b, " %s |", eventName(r.Event.Kind))
	}
	b.WriteString(" gubernator, owner killed (issue) |\n|---|")
	for range events {
		b.WriteString("---:|")
	}
	b.WriteString("---:|\n")
	rows := []struct {
		name  string
		value func(ClusterLoadResult) string
		guber string
	}{
		{"load", func(r ClusterLoadResult) string {
			return fmt.Sprintf("%v, event at %.2f s", r.Scenario.Duration, r.Event.At.Seconds())
		}, ""},
		{"last grant before → first grant after the move", func(r ClusterLoadResult) string {
			if r.Event.FirstAfter < 0 {
				return "no grant after the event"
			}
			return fmt.Sprintf("%s → **%s**", signedSeconds(r.Event.LastBefore), signedSeconds(r.Event.FirstAfter))
		}, gubernatorKillGap},
		{"first grant of a new owner's reign (takeover)", func(r ClusterLoadResult) string {
			if r.Event.NewReignAfter < 0 {
				return "none (handoff: the state continued)"
			}
			return signedSeconds(r.Event.NewReignAfter)
		}, ""},
		{"granted / allowed, whole run", func(r ClusterLoadResult) string { return grantedRatio(r.Granted, r.Allowed) }, ""},
		{"granted / refill, from the event to the end", func(r ClusterLoadResult) string {
			return grantedRatio(r.Event.GrantedAfter, r.Event.AllowedAfter)
		}, ""},
		{fmt.Sprintf("grants per %v window (limit %d)", cl.Period, cl.Limit), func(r ClusterLoadResult) string { return ints(r.Windows) }, ""},
		{"reference bucket: lowest level", func(r ClusterLoadResult) string {
			return fmt.Sprintf("%s (slack %.1f)", lowest(r.Replay), r.Replay.Slack)
		}, ""},
		{"granted over the limit, whole run", func(r ClusterLoadResult) string { return fmt.Sprint(r.Replay.OverLimit) }, gubernatorKillOver},
		{"Acquire / Report errors", func(r ClusterLoadResult) string {
			return fmt.Sprintf("%d / %d", sum(r.Errors), sum(r.ReportErrors))
		}, ""},
	}
	for _, row := range rows {
		fmt.Fprintf(b, "| %s |", row.name)
		for _, r := range events {
			fmt.Fprintf(b, " %s |", row.value(r))
		}
		fmt.Fprintf(b, " %s |\n", row.guber)
	}
}

func eventName(kind string) string {
	if kind == EventKill {
		return "kill -9 of the owner"
	}
	return "SIGTERM of the owner"
}

// allowedNote says what "allowed" is.
func allowedNote(r ClusterLoadResult) string {
	return fmt.Sprintf("rate × (%v + %.0f ms the pool may have been idle before)", r.Scenario.Duration,
		float64(r.IdleBefore)/float64(time.Millisecond))
}

func grantedRatio(granted int, allowed float64) string {
	if allowed <= 0 {
		return fmt.Sprintf("%d / 0", granted)
	}
	return fmt.Sprintf("%d / %.1f (%s)", granted, allowed, pct(float64(granted)/allowed))
}

func lowest(r Replay) string {
	return fmt.Sprintf("%+.2f at %.2f s", r.MinLevel, r.MinAt.Seconds())
}

func serverGrants(n int64) string {
	if n < 0 {
		return "n/a"
	}
	return fmt.Sprint(n)
}

func signedPct(f float64) string { return fmt.Sprintf("%+.1f%%", 100*f) }

func signedSeconds(d time.Duration) string {
	if d > -time.Second && d < time.Second {
		return fmt.Sprintf("%+.0f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%+.2f s", d.Seconds())
}

func ints(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// writeForward writes the forwarding cost: local and forwarded side by side at
// each concurrency.
func writeForward(b *strings.Builder, f ForwardResult) {
	cf := f.Scenario
	fmt.Fprintf(b, "\n### %s: Acquire+Report pairs to a single node, to the pool's owner in %d nodes, or to a non-owner that forwards them; %d rounds of %v each\n\n",
		cf.Name, cf.Nodes, cf.Rounds, cf.Duration)
	b.WriteString("| callers | target | pairs/s | Acquire p50 | Acquire p99 | Report p50 | Report p99 | quotad CPU (cores) |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range f.Rows {
		fmt.Fprintf(b, "| %d | %s | %.0f | %s | %s | %s | %s | %.2f |\n", r.Concurrency, r.Target, r.PerSecond,
			ms(r.AcquireP50), ms(r.AcquireP99), ms(r.ReportP50), ms(r.ReportP99), r.QuotadCPUs)
	}
	fmt.Fprintf(b, "\nThe %d nodes idle (heartbeats, gossip, reconciliation) used %.3f cores together.\n", cf.Nodes, f.IdleCPUs)
}
