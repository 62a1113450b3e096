package driver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/quotad/quotad/cluster"
	"github.com/quotad/quotad/internal/quotadproc"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// formTimeout bounds how long a new cluster may take to form.
const formTimeout = 20 * time.Second

// quotadCluster is N quotad processes on loopback forming one cluster: each
// serves gRPC on a free port and gossips on a port chosen before the start, so
// that every node's --join lists every member (the members of record).
type quotadCluster struct {
	nodes []*clusterNode
	conns []*grpc.ClientConn // PeerService connections, by node
}

// clusterNode is one member: its process and its member id (gossip address).
type clusterNode struct {
	*quotadNode
	ID string

	mu      sync.Mutex
	gone    bool          // killed, terminated or stopped: not serving
	stopped chan struct{} // closed once a SIGTERM'd process has exited
}

// startCluster starts n nodes serving the pools of yaml (written into dir), with
// metrics on a free port, and returns once every process serves (not once the
// cluster has formed: see waitFormed). A start that fails because another
// process took a chosen gossip port is tried again.
func startCluster(ctx context.Context, bin, dir string, n int, yaml string) (*quotadCluster, error) {
	cfg := filepath.Join(dir, "quotad.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		return nil, fmt.Errorf("writing the quotad config: %w", err)
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var c *quotadCluster
		if c, err = startClusterOnce(ctx, bin, cfg, n); err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, err
}

func startClusterOnce(ctx context.Context, bin, cfg string, n int) (*quotadCluster, error) {
	ids := make([]string, n)
	for i := range ids {
		port, err := freeGossipPort()
		if err != nil {
			return nil, err
		}
		ids[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	c := &quotadCluster{}
	type started struct {
		node *quotadproc.Node
		err  error
	}
	results := make([]started, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i].node, results[i].err = quotadproc.Start(ctx, bin, "--config", cfg, "--metrics-listen", "127.0.0.1:0",
				"--gossip-listen", ids[i], "--join", strings.Join(ids, ","))
		})
	}
	wg.Wait()
	var errs []error
	for i, r := range results {
		if r.err != nil {
			errs = append(errs, fmt.Errorf("node %d: %w", i, r.err))
			continue
		}
		c.nodes = append(c.nodes, &clusterNode{quotadNode: &quotadNode{r.node}, ID: ids[i]})
	}
	if len(errs) > 0 {
		c.Stop()
		return nil, errors.Join(errs...)
	}
	for _, nd := range c.nodes {
		conn, err := grpc.NewClient(nd.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("connecting to %s: %w", nd.Addr, err)
		}
		c.conns = append(c.conns, conn)
	}
	return c, nil
}

// startFormedCluster starts a cluster (see startCluster) and waits until it has
// formed, its nodes owning pools pools between them.
func startFormedCluster(ctx context.Context, bin, dir string, n int, yaml string, pools int) (*quotadCluster, error) {
	c, err := startCluster(ctx, bin, dir, n, yaml)
	if err != nil {
		return nil, err
	}
	if _, err := c.waitFormed(ctx, pools, time.Now()); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// freeGossipPort returns a loopback port free for both TCP and UDP (memberlist
// binds both).
func freeGossipPort() (int, error) {
	for range 20 {
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("finding a free port: %w", err)
		}
		port := tl.Addr().(*net.TCPAddr).Port
		ul, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		tl.Close()
		if err == nil {
			ul.Close()
			return port, nil
		}
	}
	return 0, errors.New("finding a free port: none free for both TCP and UDP")
}

// IDs returns the member ids, by node.
func (c *quotadCluster) IDs() []string {
	ids := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		ids[i] = n.ID
	}
	return ids
}

// Addrs returns the gRPC addresses, by node.
func (c *quotadCluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr
	}
	return addrs
}

// AddrsFrom returns the gRPC addresses starting with node i's, then the
// following ones: a client of node i that fails over to the others.
func (c *quotadCluster) AddrsFrom(i int) []string {
	addrs := c.Addrs()
	return append(addrs[i:], addrs[:i]...)
}

// OwnerIndex returns the node that owns pool while every member is up
// (cluster.Owner over the members of record).
func (c *quotadCluster) OwnerIndex(pool string) int {
	owner := cluster.Owner(pool, c.IDs())
	for i, n := range c.nodes {
		if n.ID == owner {
			return i
		}
	}
	return -1
}

// formation is what waitFormed saw.
type formation struct {
	// At is when every node was seen certifying every member, with every pool
	// owned.
	At time.Time
	// OwnedAfter is a lower bound of the last takeover: the send time of the
	// last poll of a node that then owned fewer pools than at formation (the
	// node took them over after that poll reached it). A pool taken over starts
	// empty, so it cannot have granted more than its refill since OwnedAfter.
	OwnedAfter time.Time
	// Owned is each node's number of owned pools at formation.
	Owned []int
}

// waitFormed polls every node's GetCluster until every node certifies all
// members and the nodes own pools pools between them.
func (c *quotadCluster) waitFormed(ctx context.Context, pools int, since time.Time) (formation, error) {
	ctx, cancel := context.WithTimeout(ctx, formTimeout)
	defer cancel()
	n := len(c.nodes)
	var f formation
	// Per node: the send time of each poll and what it owned.
	type poll struct {
		sent  time.Time
		owned int
	}
	history := make([][]poll, n)
	var last error
	for {
		owned, certified := 0, true
		now := make([]int, n)
		for i, conn := range c.conns {
			sent := time.Now()
			callCtx, cancelCall := context.WithTimeout(ctx, time.Second)
			st, err := quotadv1.NewPeerServiceClient(conn).GetCluster(callCtx, &quotadv1.GetClusterRequest{})
			cancelCall()
			if err != nil {
				last, certified = err, false
				continue
			}
			history[i] = append(history[i], poll{sent, int(st.GetOwnedPools())})
			now[i] = int(st.GetOwnedPools())
			owned += now[i]
			if len(st.GetCertified()) != n || len(st.GetLatest()) != n {
				certified = false
			}
		}
		if certified && owned == pools {
			f.At, f.Owned, f.OwnedAfter = time.Now(), now, since
			for i, h := range history {
				for _, p := range h {
					if p.owned < now[i] && p.sent.After(f.OwnedAfter) {
						f.OwnedAfter = p.sent
					}
				}
			}
			return f, nil
		}
		select {
		case <-ctx.Done():
			return f, fmt.Errorf("the cluster did not form within %v (owned %d of %d pools; last error %v)", formTimeout, owned, pools, last)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// end marks node n gone and, unless it already was, ends it with how (under
// its lock).
func (n *clusterNode) end(how func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.gone {
		n.gone = true
		how()
	}
}

// isGone tells whether the node was killed, terminated or stopped.
func (n *clusterNode) isGone() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.gone
}

// Kill ends node i at once (kill -9).
func (c *quotadCluster) Kill(i int) {
	n := c.nodes[i]
	n.end(n.Node.Kill)
}

// Terminate sends node i SIGTERM (a graceful leave: it hands its pools off)
// without waiting for it to exit; Stop waits.
func (c *quotadCluster) Terminate(i int) {
	n := c.nodes[i]
	n.end(func() {
		n.stopped = make(chan struct{})
		go func() {
			defer close(n.stopped)
			n.Node.Stop(10 * time.Second)
		}()
	})
}

// Stop ends every node still running: SIGTERM, then SIGKILL after 5 s, all at
// once; and waits for those terminated earlier.
func (c *quotadCluster) Stop() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Go(func() {
			n.mu.Lock()
			gone, stopped := n.gone, n.stopped
			n.gone = true
			n.mu.Unlock()
			switch {
			case stopped != nil:
				<-stopped
			case !gone:
				n.Node.Stop(5 * time.Second)
			}
		})
	}
	wg.Wait()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

// CPU returns the CPU time the nodes still running have used so far.
func (c *quotadCluster) CPU() (time.Duration, error) {
	var total time.Duration
	for _, n := range c.nodes {
		if n.isGone() {
			continue
		}
		d, err := n.CPU()
		if err != nil {
			return 0, err
		}
		total += d
	}
	return total, nil
}

// Grants sums quotad_grants_total of pool over the nodes still running (from
// their /metrics), or returns -1 when a node could not be read.
func (c *quotadCluster) Grants(pool string) int64 {
	var total int64
	for _, n := range c.nodes {
		if n.isGone() {
			continue
		}
		v, err := scrapeCounter(n.MetricsAddr, "quotad_grants_total", pool)
		if err != nil {
			return -1
		}
		total += v
	}
	return total
}

// scrapeCounter reads the counter name{pool="pool"} from a node's /metrics (0
// when absent).
func scrapeCounter(addr, name, pool string) (int64, error) {
	if addr == "" {
		return 0, errors.New("metrics are off")
	}
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	prefix := fmt.Sprintf("%s{pool=%q} ", name, pool)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f), err
		}
	}
	return 0, sc.Err()
}

// ownershipRE matches the log lines of a node about pool ownership.
var ownershipRE = regexp.MustCompile(`^time=(\S+) level=\S+ msg="?(pool owned|pool handed off|handoff failed[^"]*|taking pool over|disowning pool)"?(.*)$`)

// OwnershipLog returns the nodes' log lines about pool ownership, in time
// order, as "+12.345 s node 1: pool owned pool=... how=..." (time since since,
// to the millisecond of the log). Call it after Stop to have every line.
func (c *quotadCluster) OwnershipLog(since time.Time) []string {
	type line struct {
		at   time.Time
		text string
	}
	var lines []line
	for i, n := range c.nodes {
		for l := range strings.Lines(n.Log()) {
			m := ownershipRE.FindStringSubmatch(strings.TrimSpace(l))
			if m == nil {
				continue
			}
			at, err := time.Parse(time.RFC3339Nano, m[1])
			if err != nil {
				continue
			}
			lines = append(lines, line{at, fmt.Sprintf("node %d: %s%s", i, m[2], m[3])})
		}
	}
	slices.SortStableFunc(lines, func(a, b line) int { return a.at.Compare(b.at) })
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = fmt.Sprintf("%+.3f s %s", l.at.Sub(since).Seconds(), l.text)
	}
	return out
}
