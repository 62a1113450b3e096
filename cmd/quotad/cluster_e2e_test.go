package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/quotad/quotad/cluster"
	"github.com/quotad/quotad/internal/clustertest"
	"github.com/quotad/quotad/internal/testnode"
	statev1 "github.com/quotad/quotad/proto/quotad/state/v1"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// The cluster end-to-end tests run quotad members as real processes on loopback
// (fence-after and suspect-after 500ms, heartbeats every 50ms) and drive one pool
// to saturation with Go clients connected to every node. Every pool allows
// clusterAmount requests per clusterPeriod (bucket capacity clusterAmount).
//
// Safety is checked by replaying the grants the clients received, at the instant
// (test process, monotonic clock) each answer arrived, through a reference token
// bucket of the pool's rate that must never go below zero. Its capacity is
//
//   - one bucket capacity, the pool's own, which is also its starting level: the
//     level the pool would start at without the takeover charge. A new cluster
//     starts every pool empty (the takeover charge), and so does every takeover
//     after a crash, while a handoff continues the exact state: across owners the
//     pool never grants more in any interval [a, b] than capacity + rate x (b -
//     a), which is what the reference, full at the start, allows;
//   - plus rate x clusterTimingSlack: each grant is seen when its answer arrives,
//     a little after the owner granted it (network, scheduling, a forwarding
//     hop), so grants made in an interval can be seen closer together than they
//     were made, by up to the largest such delay; 100 ms covers it on loopback.
//
// That reference is what the provider's own bucket allows. The cluster promises
// more, and a second, strict reference checks it: the same bucket, but empty
// (bar the timing slack) FenceAfter after the first member started, which is
// before any member can vouch for anyone (FenceAfter+Margin after its start), so
// before any pool is first taken over. It catches an over-grant much smaller than
// a bucket, such as two owners granting at once for a moment.
const (
	clusterAmount      = 100
	clusterPeriod      = 5 * time.Second
	clusterRate        = clusterAmount / 5.0 // per second
	clusterTimingSlack = 100 * time.Millisecond
	clusterWorkers     = 8
	clusterFormWithin  = 10 * time.Second
)

// clusterConfig writes a pool file with the named pools, each clusterAmount
// requests per clusterPeriod, and returns its path.
func clusterConfig(t *testing.T, pools ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("pools:\n")
	for _, p := range pools {
		fmt.Fprintf(&b, "  - name: %s\n    limits:\n      - {resource: requests, amount: %d, per: %v}\n", p, clusterAmount, clusterPeriod)
	}
	path := filepath.Join(t.TempDir(), "pools.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func skipShortCluster(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("real-process cluster run")
	}
}

// clusterRun is a cluster under test.
type clusterRun struct {
	nodes []*clustertest.Node
	began time.Time // just before the first member started
}

// newClusterRun builds the binary (once per test process), then notes the time:
// the members start after it.
func newClusterRun(t *testing.T) clusterRun {
	t.Helper()
	testnode.Binary(t)
	return clusterRun{began: time.Now()}
}

// startCluster runs size members on pools and waits until they serve every pool.
func startCluster(t *testing.T, size int, pools ...string) clusterRun {
	t.Helper()
	cfg := clusterConfig(t, pools...)
	c := newClusterRun(t)
	c.nodes = clustertest.StartCluster(t, cfg, size)
	took := clustertest.WaitFormed(t, c.nodes, len(pools), clusterFormWithin)
	t.Logf("%d nodes serve %d pools %v after the last started", size, len(pools), took.Round(time.Millisecond))
	return c
}

// checkNeverOverdrawn replays grants through the two reference buckets (see the
// top of this file).
func (c clusterRun) checkNeverOverdrawn(t *testing.T, what string, grants []clustertest.Grant) {
	t.Helper()
	slack := clusterRate * clusterTimingSlack.Seconds()
	capacity := clusterAmount + slack
	for _, ref := range []struct {
		name    string
		start   time.Time
		initial float64
	}{
		{"the pool's bucket, full at the start", c.began, capacity},
		{"the strict reference, empty when the first member could vouch", c.began.Add(clustertest.FenceAfter), slack},
	} {
		r := clustertest.ReplayBucket(grants, ref.start, clusterRate, capacity, ref.initial)
		if !r.OK() {
			t.Errorf("%s: the grants overdrew %s (%v/s, capacity %v): %v; %.2f requests too many between %v and %v",
				what, ref.name, clusterRate, capacity, r, r.Excess, r.Since.Round(time.Millisecond), r.At.Round(time.Millisecond))
		} else {
			t.Logf("%s, %s: %v", what, ref.name, r)
		}
	}
}

// waitGrants waits until the load has had n grants.
func waitGrants(t *testing.T, load *clustertest.Load, n int) {
	t.Helper()
	clustertest.WaitFor(t, 10*time.Second, fmt.Sprintf("%d grants", n), func() bool { return load.Count() >= n })
}

// stopLoad stops the load on pool, logs its errors, checks its grants never
// overdrew the reference buckets and returns them.
func (c clusterRun) stopLoad(t *testing.T, load *clustertest.Load, pool string) []clustertest.Grant {
	t.Helper()
	grants := load.Stop()
	t.Logf("%s", load.Errors())
	c.checkNeverOverdrawn(t, pool, grants)
	return grants
}

// faultPools are the pools of the fault tests; "hot" is the one under load.
var faultPools = []string{"hot", "calm", "idle"}

// hotRun is a 3-member cluster on faultPools with "hot" saturated.
type hotRun struct {
	clusterRun
	owner *clustertest.Node // of "hot"
	load  *clustertest.Load
}

// startHot starts 3 members on faultPools, saturates "hot" with Go clients
// connected to every node and waits for its first 40 grants.
func startHot(t *testing.T) hotRun {
	t.Helper()
	r := hotRun{clusterRun: startCluster(t, 3, faultPools...)}
	r.owner = clustertest.Owner("hot", r.nodes)
	r.load = clustertest.StartLoad(t, "hot", clustertest.Addrs(r.nodes), clusterWorkers)
	waitGrants(t, r.load, 40)
	return r
}

// survivors waits until the members other than the owner serve every pool, and
// returns them.
func (r hotRun) survivors(t *testing.T) []*clustertest.Node {
	t.Helper()
	survivors := clustertest.Others(r.nodes, r.owner)
	clustertest.WaitFormed(t, survivors, len(faultPools), clusterFormWithin)
	return survivors
}

// TestClusterSaturatedPool: 8 Go clients spread over 3 nodes saturate one pool
// for 20 s. The grants never overdraw the reference bucket, and after the first
// period they reach 95% of rate x time.
func TestClusterSaturatedPool(t *testing.T) {
	skipShortCluster(t)
	const run = 20 * time.Second
	c := startCluster(t, 3, "hot", "calm", "idle")
	nodes := c.nodes
	load := clustertest.StartLoad(t, "hot", clustertest.Addrs(nodes), clusterWorkers)
	time.Sleep(run) // the run itself
	end := time.Now()
	grants := c.stopLoad(t, load, "hot")
	from := load.Start.Add(clusterPeriod)
	got := clustertest.CountBetween(grants, from, end)
	want := clusterRate * end.Sub(from).Seconds()
	t.Logf("%d grants in %v after the first period: %.1f%% of rate x time", got, end.Sub(from).Round(time.Millisecond), 100*float64(got)/want)
	if float64(got) < 0.95*want {
		t.Errorf("%d grants from %v to %v, want at least 95%% of %.0f", got, clusterPeriod, end.Sub(load.Start).Round(time.Millisecond), want)
	}
}

// TestClusterOwnerKilled: kill -9 the pool's owner under saturating load. The
// grants never overdraw the reference bucket, and resume within 3 s.
func TestClusterOwnerKilled(t *testing.T) {
	skipShortCluster(t)
	r := startHot(t)
	owner, load := r.owner, r.load

	killed := time.Now()
	owner.Kill()
	clustertest.WaitFor(t, 10*time.Second, "a grant after the kill", func() bool {
		_, ok := clustertest.FirstAfter(load.Grants(), killed)
		return ok
	})
	r.survivors(t)
	time.Sleep(3 * time.Second) // saturated load on the new owner
	grants := r.stopLoad(t, load, "hot")
	last, _ := clustertest.LastBefore(grants, killed)
	first, _ := clustertest.FirstAfter(grants, killed)
	resume := first.At.Sub(killed)
	t.Logf("killed the owner %s: last grant %v before, first %v after (gap %v)", owner.ID,
		killed.Sub(last.At).Round(time.Millisecond), resume.Round(time.Millisecond), first.At.Sub(last.At).Round(time.Millisecond))
	if resume > 3*time.Second {
		t.Errorf("grants resumed %v after the owner was killed, want within 3s", resume)
	}
	if n := clustertest.CountBetween(grants, first.At, time.Now()); n < 40 {
		t.Errorf("only %d grants after the takeover", n)
	}
}

// TestClusterOwnerStopped: SIGTERM the pool's owner under saturating load. It
// hands the pool over with its state and exits 0; the grants resume within 0.5 s
// and never overdraw the reference bucket. Clients whose first node is the one
// stopping move on to the others.
func TestClusterOwnerStopped(t *testing.T) {
	skipShortCluster(t)
	r := startHot(t)
	owner, load := r.owner, r.load

	signaled := time.Now()
	if code := owner.Stop(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	exited := time.Now()
	heir := clustertest.Owner("hot", r.survivors(t))
	time.Sleep(3 * time.Second) // saturated load on the new owner
	grants := r.stopLoad(t, load, "hot")
	gap, began := clustertest.MaxGap(grants, signaled, exited.Add(time.Second))
	t.Logf("SIGTERM to %s; exited after %v; longest time without a grant from then to 1s after the exit: %v, from %v after the signal",
		owner.ID, exited.Sub(signaled).Round(time.Millisecond), gap.Round(time.Millisecond), began.Sub(signaled).Round(time.Millisecond))
	if gap > 500*time.Millisecond {
		t.Errorf("no grant for %v around the graceful stop, want grants to resume within 0.5s", gap)
	}
	if !strings.Contains(heir.Log(), `msg="pool owned" pool=hot how=handoff`) {
		t.Errorf("the new owner %s did not continue the pool from a handoff:\n%s", heir.ID, grepLog(heir.Log(), "pool"))
	}
	if n := clustertest.CountBetween(grants, exited, time.Now()); n < 40 {
		t.Errorf("only %d grants after the stop", n)
	}
}

// TestClusterNodeJoins: a 4th node joins under load. The pools it now owns move
// to it with their state (it continues them from a handoff: no takeover charge,
// no jump in sequence numbers), and the saturated pool that moves never
// overdraws the reference bucket.
func TestClusterNodeJoins(t *testing.T) {
	skipShortCluster(t)
	var pools []string
	for i := range 12 {
		pools = append(pools, fmt.Sprintf("pool-%02d", i))
	}
	cfg := clusterConfig(t, pools...)
	c := newClusterRun(t)
	nodes := clustertest.StartCluster(t, cfg, 3)
	clustertest.WaitFormed(t, nodes, len(pools), clusterFormWithin)
	formed := time.Now()

	// The new member's port decides which pools move: take one that moves some,
	// not all.
	var newID string
	var moving []string
	for newID == "" || len(moving) == 0 || len(moving) > len(pools)/2 {
		newID = clustertest.FreeGossipAddr(t)
		moving = nil
		ids := append(clustertest.IDs(nodes), newID)
		for _, p := range pools {
			if cluster.Owner(p, ids) == newID {
				moving = append(moving, p)
			}
		}
	}
	hot := moving[0]
	load := clustertest.StartLoad(t, hot, clustertest.Addrs(nodes), clusterWorkers)
	ctx := context.Background()
	seqBefore := map[string]uint64{}
	for _, p := range moving[1:] {
		st, err := nodes[0].Quota.GetPool(ctx, &quotadv1.GetPoolRequest{Pool: p})
		if err != nil {
			t.Fatal(err)
		}
		seqBefore[p] = st.GetNextSequence()
	}
	// Until the idle pools that move are full, their level tells a handoff (full)
	// from a takeover (charged: empty at the takeover).
	time.Sleep(clusterPeriod - time.Since(formed))

	joined := time.Now()
	all := append(clustertest.IDs(nodes), newID)
	newcomer := clustertest.Start(t, cfg, newID, all)
	nodes = append(nodes, newcomer)
	took := clustertest.WaitFormed(t, nodes, len(pools), clusterFormWithin)
	t.Logf("4 nodes serve the %d pools %v after the 4th started; it owns %v", len(pools), took.Round(time.Millisecond), moving)
	st, err := newcomer.Status()
	if err != nil {
		t.Fatal(err)
	}
	if int(st.GetOwnedPools()) != len(moving) || st.GetOwnedPools() == 0 {
		t.Errorf("the new node owns %d pools, want %d (%v)", st.GetOwnedPools(), len(moving), moving)
	}
	for _, p := range moving {
		if !strings.Contains(newcomer.Log(), fmt.Sprintf(`msg="pool owned" pool=%s how=handoff`, p)) {
			t.Errorf("pool %s did not move to the new node by a handoff:\n%s", p, grepLog(newcomer.Log(), "pool"))
		}
	}
	for _, p := range moving[1:] {
		ps, err := newcomer.Quota.GetPool(ctx, &quotadv1.GetPoolRequest{Pool: p})
		if err != nil {
			t.Fatal(err)
		}
		level := ps.GetLimits()[0].GetLevel()
		if level < clusterAmount-2 || ps.GetNextSequence() != seqBefore[p] {
			t.Errorf("idle pool %s on the new node: level %d, next sequence %d; want full (%d) and %d as before the move",
				p, level, ps.GetNextSequence(), clusterAmount, seqBefore[p])
		}
	}
	time.Sleep(3 * time.Second) // saturated load on the new owner
	grants := c.stopLoad(t, load, hot)
	gap, began := clustertest.MaxGap(grants, joined, joined.Add(took))
	t.Logf("%s: longest time without a grant around the join: %v, from %v after the 4th node started", hot, gap.Round(time.Millisecond), began.Sub(joined).Round(time.Millisecond))
	for i := 1; i < len(grants); i++ {
		if grants[i].At.After(joined) && grants[i].Seq > grants[i-1].Seq+1<<20 {
			t.Errorf("%s: sequence jumped from %d to %d at the move: taken over, not handed off", hot, grants[i-1].Seq, grants[i].Seq)
			break
		}
	}
	if n := clustertest.CountBetween(grants, joined.Add(took), time.Now()); n < 40 {
		t.Errorf("only %d grants after the move", n)
	}
	// Grants reported across the move were found by the new owner: their leases
	// moved with the pool.
	if n := load.ReportErrors(); n > 0 {
		t.Errorf("%d Reports failed (%s)", n, load.Errors())
	}
}

// TestClusterDropsGarbage sends garbage and oversized packets to a node's gossip
// port, over UDP and TCP, and bogus PeerService calls. The node drops them with
// a log line and keeps serving: Acquire works, and no node's view changes.
func TestClusterDropsGarbage(t *testing.T) {
	skipShortCluster(t)
	pools := faultPools
	nodes := startCluster(t, 3, pools...).nodes
	target := nodes[0]
	before := clusterViews(t, nodes)

	junk := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	const userMsg = 8 // memberlist's message type for user messages (heartbeats)
	emptyFrom, err := proto.Marshal(&quotadv1.Heartbeat{Incarnation: 1, SentAt: 1, View: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	// UDP: random packets, the largest datagram, and user messages that are not
	// heartbeats.
	udp, err := net.Dial("udp", target.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	packets := [][]byte{junk(65507), {userMsg}, append([]byte{userMsg}, junk(1000)...), append([]byte{userMsg}, emptyFrom...)}
	for range 200 {
		packets = append(packets, junk(1+int(junk(1)[0])*5))
	}
	for _, p := range packets {
		if _, err := udp.Write(p); err != nil {
			t.Fatalf("udp write: %v", err)
		}
	}
	// TCP: a stream of random bytes, user messages of absurd and of garbage
	// length, and a push/pull claiming a billion nodes.
	streams := [][]byte{
		junk(4 << 20),
		append([]byte{userMsg}, msgpackIntMap("UserMsgLen", 1<<30)...),
		append(append([]byte{userMsg}, msgpackIntMap("UserMsgLen", 300)...), junk(300)...),
		append([]byte{6}, msgpackIntMap("Nodes", 1_000_000_000)...),
	}
	for _, s := range streams {
		sendStream(t, target.ID, s)
	}
	// PeerService: replication and handoffs from names that are not members,
	// and from a member's name with absurd content.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	absurd := []*statev1.PoolState{
		{Pool: "hot", FormatVersion: 1 << 30, Version: 1 << 62},
		{Pool: "", FormatVersion: 1},
		{Pool: "no-such-pool", FormatVersion: 1},
		{Pool: "hot", FormatVersion: 1, Buckets: []*statev1.BucketState{{Resource: "gold", Period: durationpb.New(-time.Hour), Deficit: durationpb.New(-1000 * time.Hour)}}},
	}
	for _, from := range []string{"", "10.255.255.1:7946", "not an address", strings.Repeat("x", 300)} {
		_, err := target.Peer.Replicate(ctx, &quotadv1.ReplicateRequest{From: from, Pools: absurd})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("Replicate from %.20q: %v, want PermissionDenied", from, err)
		}
		_, err = target.Peer.Handoff(ctx, &quotadv1.HandoffRequest{From: from, Pools: absurd})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("Handoff from %.20q: %v, want PermissionDenied", from, err)
		}
	}
	// From a member's name (PeerService trusts the name; securing it is the
	// transport's job), the states of a newer format or of no pool are dropped;
	// the others wait, unused, for a takeover that would refuse them.
	member := nodes[1].ID
	rep, err := target.Peer.Replicate(ctx, &quotadv1.ReplicateRequest{From: member, Pools: absurd})
	if err != nil || rep.GetStored() > 2 {
		t.Errorf("Replicate of absurd states from a member's name: stored %d (%v), want at most 2", rep.GetStored(), err)
	}
	hand, err := target.Peer.Handoff(ctx, &quotadv1.HandoffRequest{From: member, Pools: absurd})
	if err != nil || hand.GetStored() > 2 {
		t.Errorf("Handoff of absurd states from a member's name: stored %d (%v), want at most 2", hand.GetStored(), err)
	}
	t.Logf("absurd states from a member's name: Replicate stored %d of %d, Handoff %d", rep.GetStored(), len(absurd), hand.GetStored())

	for _, line := range []string{
		"unreadable gossip message dropped", // user messages that are not heartbeats
		"[ERR] memberlist: ",                // memberlist's own complaints, logged as warnings
		"peer call from a non-member dropped",
	} {
		clustertest.WaitFor(t, 5*time.Second, fmt.Sprintf("the log line %q", line), func() bool { return strings.Contains(target.Log(), line) })
		t.Logf("%d log lines %q", strings.Count(target.Log(), line), line)
	}

	// Still serving: every pool, through the target.
	for _, p := range pools {
		resp, err := target.Quota.Acquire(ctx, &quotadv1.AcquireRequest{Pool: p, Cost: &quotadv1.Cost{Requests: 1}})
		if err != nil || !resp.GetGranted() {
			t.Errorf("acquire %s through the node after the garbage: %v %v", p, resp, err)
		}
	}
	// Every view is as it was, and stays so for a few heartbeats (a window to
	// observe a change in, not a wait for one).
	time.Sleep(10 * clustertest.Heartbeat)
	if after := clusterViews(t, nodes); !slices.Equal(after, before) {
		t.Errorf("views changed:\nbefore %q\nafter  %q", before, after)
	}
	if ok, why := clustertest.Formed(nodes, len(pools)); !ok {
		t.Errorf("cluster no longer formed: %s", why)
	}
}

// clusterViews returns each node's GetCluster answer, as text.
func clusterViews(t *testing.T, nodes []*clustertest.Node) []string {
	t.Helper()
	var out []string
	for _, n := range nodes {
		st, err := n.Status()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s record %v latest %v certified %v owns %d", st.GetId(), st.GetRecord(), st.GetLatest(), st.GetCertified(), st.GetOwnedPools()))
	}
	return out
}

// msgpackIntMap encodes {key: v} in MessagePack, as memberlist's stream headers
// are.
func msgpackIntMap(key string, v uint32) []byte {
	b := []byte{0x81, 0xa0 | byte(len(key))}
	b = append(b, key...)
	return append(b, 0xce, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// sendStream connects to addr over TCP, writes data (as much as the node takes
// before it closes the connection) and closes.
func sendStream(t *testing.T, addr string, data []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("tcp dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	c.Write(data) // the node may close early: that is dropping it
}

// TestClusterOwnerPaused: SIGSTOP the pool's owner for longer than fence-after
// plus suspect-after, then SIGCONT. The others serve the pool while it is
// stopped, the grants never overdraw the reference bucket, during the pause and
// in the 5 s after it, and the cluster forms again.
func TestClusterOwnerPaused(t *testing.T) {
	skipShortCluster(t)
	r := startHot(t)
	owner, load := r.owner, r.load

	const pause = 2500 * time.Millisecond // > fence-after + suspect-after
	pid := owner.Pid()
	stopped := time.Now()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	time.Sleep(pause)
	resume()
	continued := time.Now()
	time.Sleep(5 * time.Second) // under load after the owner is back
	grants := r.stopLoad(t, load, "hot")
	clustertest.WaitFormed(t, r.nodes, len(faultPools), clusterFormWithin)
	first, ok := clustertest.FirstAfter(grants, stopped)
	during := clustertest.CountBetween(grants, stopped, continued)
	if !ok || !first.At.Before(continued) {
		t.Fatalf("no grant while the owner was stopped (%v)", pause)
	}
	last, _ := clustertest.LastBefore(grants, stopped)
	t.Logf("owner %s stopped for %v: last grant %v before, the others granted from %v after the stop (%d grants during it)",
		owner.ID, pause, stopped.Sub(last.At).Round(time.Millisecond), first.At.Sub(stopped).Round(time.Millisecond), during)
	if gap := first.At.Sub(stopped); gap > pause-500*time.Millisecond {
		t.Errorf("the others served the pool only %v after the owner stopped", gap)
	}
	// From its first grant on, the new owner serves the saturated pool at its rate
	// (it started empty: grants come from the refill).
	if want := clusterRate * continued.Sub(first.At).Seconds(); float64(during) < 0.5*want {
		t.Errorf("%d grants while the owner was stopped, from %v after the stop; want about %.0f", during, first.At.Sub(stopped).Round(time.Millisecond), want)
	}
	gap, began := clustertest.MaxGap(grants, continued, continued.Add(5*time.Second))
	t.Logf("after SIGCONT: longest time without a grant %v, from %v after it; %d grants in the 5s",
		gap.Round(time.Millisecond), began.Sub(continued).Round(time.Millisecond), clustertest.CountBetween(grants, continued, continued.Add(5*time.Second)))
}

// grepLog returns the lines of log that contain any of words.
func grepLog(log string, words ...string) string {
	var out []string
	for line := range strings.SplitSeq(log, "\n") {
		for _, w := range words {
			if strings.Contains(line, w) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
