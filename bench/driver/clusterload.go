package driver

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	quotad "github.com/quotad/quotad/clients/go"
)

// clusterPool is the pool of the cluster load scenarios.
const clusterPool = "bench/cluster"

// The slack of the reference-bucket replay. Grant times are taken by the
// client when the Acquire returns, after the grant: a grant that came back
// slower than a later one is credited refill it did not have (replaySlack of
// refill). And a takeover charges the whole units the bucket holds
// (Bucket.level rounds down), so a pool taken over may hold up to one unit
// (replaySlackUnits) more than empty.
const (
	replaySlack      = 10 * time.Millisecond
	replaySlackUnits = 1.0
)

// ClusterLoad is the accuracy scenario measured for gubernator: a pool of Limit
// requests per Period on a cluster of Nodes nodes, and WorkersPerNode workers
// per node calling flat out, each an Acquire of 1 request then at once its
// Report, through the Go client of its own node (which fails over to the other
// nodes). With an Event, the pool's owner is killed (kill -9) or stopped
// (SIGTERM) EventAt into the load.
type ClusterLoad struct {
	Name           string        `json:"name"`
	Nodes          int           `json:"nodes"`
	WorkersPerNode int           `json:"workers_per_node"`
	Limit          int64         `json:"limit"`
	Period         time.Duration `json:"period"`
	Duration       time.Duration `json:"duration"`
	Event          string        `json:"event,omitempty"` // "", "kill" or "term"
	EventAt        time.Duration `json:"event_at,omitempty"`
}

// The cluster load events.
const (
	EventKill = "kill" // kill -9 of the pool's owner
	EventTerm = "term" // SIGTERM of the pool's owner (graceful leave, handoff)
)

// ClusterAccuracy is gubernator's scenario: 1000 requests per 10 s, 3 nodes × 8
// workers, 40 s.
func ClusterAccuracy() ClusterLoad {
	return ClusterLoad{Name: "cluster-accuracy", Nodes: 3, WorkersPerNode: 8, Limit: 1000, Period: 10 * time.Second,
		Duration: 40 * time.Second}
}

// ClusterFailover is the same load with the owner killed 10 s in, for 30 s.
func ClusterFailover() ClusterLoad {
	cl := ClusterAccuracy()
	cl.Name, cl.Duration, cl.Event, cl.EventAt = "cluster-failover-kill", 30*time.Second, EventKill, 10*time.Second
	return cl
}

// ClusterLeave is the same load with the owner stopped with SIGTERM 10 s in,
// for 20 s.
func ClusterLeave() ClusterLoad {
	cl := ClusterAccuracy()
	cl.Name, cl.Duration, cl.Event, cl.EventAt = "cluster-failover-term", 20*time.Second, EventTerm, 10*time.Second
	return cl
}

// Validate reports the first field of cl that cannot run.
func (cl ClusterLoad) Validate() error {
	switch {
	case cl.Nodes < 1 || cl.WorkersPerNode < 1:
		return fmt.Errorf("%s: nodes and workers per node must be at least 1", cl.Name)
	case cl.Limit < 1 || cl.Period <= 0 || cl.Duration <= 0:
		return fmt.Errorf("%s: limit, period and duration must be positive", cl.Name)
	case cl.Event != "" && cl.Event != EventKill && cl.Event != EventTerm:
		return fmt.Errorf("%s: unknown event %q (want kill or term)", cl.Name, cl.Event)
	case cl.Event != "" && (cl.EventAt <= 0 || cl.EventAt >= cl.Duration):
		return fmt.Errorf("%s: the event must come within the load", cl.Name)
	case cl.Event != "" && cl.Nodes < 3:
		return fmt.Errorf("%s: an event needs at least 3 nodes (a majority must survive it)", cl.Name)
	}
	return nil
}

// rate is the pool's refill in requests per second.
func (cl ClusterLoad) rate() float64 { return float64(cl.Limit) / cl.Period.Seconds() }

// ClusterLoadResult is what one cluster load run measured. Times are from the
// start of the load unless said otherwise.
type ClusterLoadResult struct {
	Scenario ClusterLoad `json:"scenario"`
	// FormedAfter is how long the cluster took to form, from the start of its
	// processes to every pool owned and every member certified by every node.
	FormedAfter time.Duration `json:"formed_after"`
	// Owner is the pool's first owner (member id) and its node index.
	Owner     string `json:"owner"`
	OwnerNode int    `json:"owner_node"`
	// IdleBefore is from the earliest moment the pool may have been taken over
	// (it then starts empty) to the start of the load: the pool may hold
	// IdleBefore × rate at the start.
	IdleBefore time.Duration `json:"idle_before"`
	// Granted counts the grants the workers received during the load; Allowed
	// is the most a pool that starts empty may grant: rate × (IdleBefore +
	// Duration). Ratio = Granted / Allowed.
	Granted int     `json:"granted"`
	Allowed float64 `json:"allowed"`
	Ratio   float64 `json:"ratio"`
	// Windows counts the grants in each Period of the load.
	Windows []int `json:"windows"`
	// WorstWindow is the largest window count over Limit, minus 1 (negative:
	// under the limit), the figure gubernator's issue reports.
	WorstWindow float64 `json:"worst_window"`
	// Replay is the reference bucket run over the grant times.
	Replay Replay `json:"replay"`
	// ServerGrants sums quotad_grants_total over the nodes (-1: not measured,
	// when a node was stopped).
	ServerGrants int64 `json:"server_grants"`
	// Errors counts the Acquires that failed, by reason; ReportErrors the
	// Reports.
	Errors       map[string]int `json:"errors,omitempty"`
	ReportErrors map[string]int `json:"report_errors,omitempty"`
	// Ownership is what the nodes logged about the pool's ownership: each
	// takeover, handoff and failed handoff, with the time since the start of
	// the load (wall clocks, to the millisecond).
	Ownership []string `json:"ownership,omitempty"`
	// Event is what happened around the event, if any.
	Event *EventResult `json:"event,omitempty"`
}

// Replay is a token bucket of Limit per Period, capacity Limit, that starts
// empty when the pool may first have been taken over, run over the grant times:
// each grant takes 1. A pool that grants no more than its limit keeps the level
// at or above 0 (less the timing slack).
type Replay struct {
	// MinLevel is the lowest level after a grant, in requests, and MinAt when.
	MinLevel float64       `json:"min_level"`
	MinAt    time.Duration `json:"min_at"`
	// Slack is the slack in requests: replaySlackUnits + rate × replaySlack.
	Slack float64 `json:"slack"`
	// OverLimit is how many grants the bucket could not pay for, beyond the
	// slack: ceil(-MinLevel - Slack), at least 0. The goal is 0.
	OverLimit int `json:"over_limit"`
}

// EventResult describes the pool moving after its owner was killed or stopped.
type EventResult struct {
	Kind string `json:"kind"`
	// At is when the signal was sent.
	At time.Duration `json:"at"`
	// The longest pause in grants around the event: its last grant before and
	// its first after, relative to At. FirstAfter is the time to the first
	// grant after the pool moved (-1: none).
	LastBefore time.Duration `json:"last_before"`
	FirstAfter time.Duration `json:"first_after"`
	// NewReignAfter is, relative to At, the first grant of a new ownership
	// reign: its grant id's epoch and sequence block (a takeover moves the
	// sequence 2^24 ahead) were not seen before the event (-1: none; a handoff
	// continues the reign).
	NewReignAfter time.Duration `json:"new_reign_after"`
	// GrantedAfter counts the grants from At to the end of the load, and
	// AllowedAfter is the refill over that time: rate × (Duration - At).
	GrantedAfter int     `json:"granted_after"`
	AllowedAfter float64 `json:"allowed_after"`
}

// clusterGrant is one grant a worker received.
type clusterGrant struct {
	at    time.Duration // since the load started, when the Acquire returned
	reign string        // "<epoch>-<sequence / 2^24>"
}

// RunClusterLoad starts a cluster, waits until it has formed, runs cl's load
// against it and returns what it measured.
func RunClusterLoad(ctx context.Context, cl ClusterLoad, quotadBin string, progressW io.Writer) (ClusterLoadResult, error) {
	res := ClusterLoadResult{Scenario: cl, ServerGrants: -1}
	if err := cl.Validate(); err != nil {
		return res, err
	}
	dir, err := os.MkdirTemp("", "quotad-bench-")
	if err != nil {
		return res, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	yaml := fmt.Sprintf("pools:\n  - name: %s\n    limits:\n      - {resource: requests, amount: %d, per: %s}\n",
		clusterPool, cl.Limit, cl.Period)
	started := time.Now()
	c, err := startCluster(ctx, quotadBin, dir, cl.Nodes, yaml)
	if err != nil {
		return res, err
	}
	defer c.Stop()
	form, err := c.waitFormed(ctx, 1, started)
	if err != nil {
		return res, err
	}
	res.FormedAfter = form.At.Sub(started)
	res.OwnerNode = c.OwnerIndex(clusterPool)
	res.Owner = c.nodes[res.OwnerNode].ID
	if form.Owned[res.OwnerNode] != 1 {
		return res, fmt.Errorf("the pool's owner by rendezvous hashing is node %d (%s), but the nodes own %v pools",
			res.OwnerNode, res.Owner, form.Owned)
	}
	progress(progressW, "%s: %d nodes formed in %.2fs; pool owned by node %d (%s)",
		cl.Name, cl.Nodes, res.FormedAfter.Seconds(), res.OwnerNode, res.Owner)

	clients := make([]*quotad.Client, cl.Nodes)
	for i := range clients {
		if clients[i], err = quotad.Dial(ctx, c.AddrsFrom(i)); err != nil {
			return res, fmt.Errorf("dialing node %d: %w", i, err)
		}
		defer clients[i].Close()
	}

	var (
		mu         sync.Mutex
		grants     []clusterGrant
		errs       = map[string]int{}
		reportErrs = map[string]int{}
	)
	start := time.Now()
	res.IdleBefore = start.Sub(form.OwnedAfter)
	// The load ends by cancellation, not by a deadline: quotad refuses at once
	// an Acquire whose wait would outlast its deadline.
	loadCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer time.AfterFunc(cl.Duration, cancel).Stop()
	var eventAt time.Duration
	var wg sync.WaitGroup
	if cl.Event != "" {
		wg.Go(func() {
			select {
			case <-loadCtx.Done():
				return
			case <-time.After(time.Until(start.Add(cl.EventAt))):
			}
			eventAt = time.Since(start)
			if cl.Event == EventKill {
				c.Kill(res.OwnerNode)
			} else {
				c.Terminate(res.OwnerNode)
			}
			progress(progressW, "%s: %s of node %d at %.2fs", cl.Name, cl.Event, res.OwnerNode, eventAt.Seconds())
		})
	}
	for node := range cl.Nodes {
		for range cl.WorkersPerNode {
			wg.Go(func() {
				tenant := quotad.WithTenant(fmt.Sprintf("node-%d", node))
				for loadCtx.Err() == nil {
					g, err := clients[node].Acquire(loadCtx, clusterPool, quotad.Cost{Requests: 1}, tenant)
					at := time.Since(start)
					if err != nil {
						if loadCtx.Err() != nil {
							return
						}
						mu.Lock()
						errs[errorReason(err)]++
						mu.Unlock()
						time.Sleep(10 * time.Millisecond)
						continue
					}
					rctx, rcancel := context.WithTimeout(context.Background(), reportTimeout)
					rerr := g.Report(rctx, quotad.Usage{}, quotad.OutcomeSuccess)
					rcancel()
					mu.Lock()
					grants = append(grants, clusterGrant{at: at, reign: reignOf(g.ID)})
					if rerr != nil {
						reportErrs[errorReason(rerr)]++
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if cl.Event == "" {
		res.ServerGrants = c.Grants(clusterPool)
	}
	c.Stop()
	res.Ownership = c.OwnershipLog(start)
	for _, line := range res.Ownership {
		progress(progressW, "%s: %s", cl.Name, line)
	}
	slices.SortFunc(grants, func(a, b clusterGrant) int { return int(a.at - b.at) })
	// Grants received after the end (an Acquire that returned just as its
	// context ended) do not count.
	for len(grants) > 0 && grants[len(grants)-1].at > cl.Duration {
		grants = grants[:len(grants)-1]
	}
	if len(errs) > 0 {
		res.Errors = errs
	}
	if len(reportErrs) > 0 {
		res.ReportErrors = reportErrs
	}
	computeClusterLoad(&res, grants, eventAt)
	return res, nil
}

// computeClusterLoad fills in res's figures from the grants, sorted by time.
func computeClusterLoad(res *ClusterLoadResult, grants []clusterGrant, eventAt time.Duration) {
	cl := res.Scenario
	rate := cl.rate()
	res.Granted = len(grants)
	res.Allowed = rate * (res.IdleBefore + cl.Duration).Seconds()
	if res.Allowed > 0 {
		res.Ratio = float64(res.Granted) / res.Allowed
	}
	res.Windows = make([]int, int(math.Ceil(float64(cl.Duration)/float64(cl.Period))))
	for _, g := range grants {
		res.Windows[min(int(g.at/cl.Period), len(res.Windows)-1)]++
	}
	res.WorstWindow = math.Inf(-1)
	for _, n := range res.Windows {
		res.WorstWindow = max(res.WorstWindow, float64(n)/float64(cl.Limit)-1)
	}
	res.Replay = replay(grants, -res.IdleBefore, rate, float64(cl.Limit))
	if cl.Event == "" {
		return
	}
	ev := &EventResult{Kind: cl.Event, At: eventAt, FirstAfter: -1, NewReignAfter: -1,
		AllowedAfter: rate * (cl.Duration - eventAt).Seconds()}
	res.Event = ev
	before := map[string]bool{}
	for _, g := range grants {
		if g.at <= eventAt {
			before[g.reign] = true
			continue
		}
		ev.GrantedAfter++
		if ev.NewReignAfter < 0 && !before[g.reign] {
			ev.NewReignAfter = g.at - eventAt
		}
	}
	// The longest pause in grants that ends after the event (and starts no
	// later than 10 s after it).
	var longest time.Duration = -1
	for i := range grants {
		if grants[i].at <= eventAt {
			continue
		}
		prev := time.Duration(0)
		if i > 0 {
			prev = grants[i-1].at
		}
		if prev > eventAt+10*time.Second {
			break
		}
		if gap := grants[i].at - prev; gap > longest {
			longest, ev.LastBefore, ev.FirstAfter = gap, prev-eventAt, grants[i].at-eventAt
		}
	}
}

// replay runs the reference bucket (capacity, refilling rate per second,
// empty at t0) over the grants, sorted by time.
func replay(grants []clusterGrant, t0 time.Duration, rate, capacity float64) Replay {
	r := Replay{Slack: replaySlackUnits + rate*replaySlack.Seconds(), MinLevel: math.Inf(1)}
	level, last := 0.0, t0
	for _, g := range grants {
		level = min(capacity, level+rate*(g.at-last).Seconds())
		last = g.at
		level--
		if level < r.MinLevel {
			r.MinLevel, r.MinAt = level, g.at
		}
	}
	if len(grants) == 0 {
		r.MinLevel = 0
	}
	r.OverLimit = max(0, int(math.Ceil(-r.MinLevel-r.Slack)))
	return r
}

// reignOf returns the ownership reign of a grant id "<epoch hex>-<sequence>":
// the epoch and the sequence's block of 2^24 (a takeover moves the sequence a
// block ahead).
func reignOf(id string) string {
	epoch, seq, ok := strings.Cut(id, "-")
	n, err := strconv.ParseUint(seq, 10, 64)
	if !ok || err != nil {
		return id
	}
	return epoch + "-" + strconv.FormatUint(n>>24, 10)
}

// errorReason is the kind of a failed call, for counting: the gRPC code and
// the start of the message.
func errorReason(err error) string {
	msg := err.Error()
	if len(msg) > 100 {
		msg = msg[:100] + "…"
	}
	return msg
}
