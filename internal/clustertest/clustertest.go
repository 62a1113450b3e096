// Package clustertest runs quotad clusters as real processes on loopback, drives
// a pool with Go clients, and checks the grants the clients saw against a
// reference token bucket: the helpers of cmd/quotad's cluster end-to-end tests.
package clustertest

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/quotad/quotad/cluster"
	"github.com/quotad/quotad/internal/testnode"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// Fast fence timings for tests: fence-after is 10 heartbeats, suspect-after 10.
const (
	FenceAfter   = 500 * time.Millisecond
	SuspectAfter = 500 * time.Millisecond
	Heartbeat    = 50 * time.Millisecond
)

var ports struct {
	mu   sync.Mutex
	used map[int]bool
}

// FreeGossipAddr returns a loopback address (127.0.0.1:port) whose port is free
// for both TCP and UDP now (memberlist binds both), and was not returned before
// in this process.
func FreeGossipAddr(t testing.TB) string {
	t.Helper()
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.used == nil {
		ports.used = map[int]bool{}
	}
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		if ports.used[port] {
			continue
		}
		ports.used[port] = true
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	t.Fatal("no free gossip port found")
	return ""
}

// Node is one quotad cluster member running as a process.
type Node struct {
	*testnode.Node
	ID    string // gossip address: the member id
	Peer  quotadv1.PeerServiceClient
	Quota quotadv1.QuotaServiceClient
}

// Start runs a member gossiping at id, with the members of record join (ids), on
// the pool file config, with the fast test timings; extra args come last.
func Start(t testing.TB, config, id string, join []string, extra ...string) *Node {
	t.Helper()
	args := []string{"--config", config, "--metrics-listen", "",
		"--gossip-listen", id, "--join", strings.Join(join, ","),
		"--fence-after", FenceAfter.String(), "--suspect-after", SuspectAfter.String(),
		"--heartbeat-interval", Heartbeat.String()}
	n := &Node{Node: testnode.Start(t, append(args, extra...)...), ID: id}
	conn, err := grpc.NewClient(n.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n.Peer, n.Quota = quotadv1.NewPeerServiceClient(conn), quotadv1.NewQuotaServiceClient(conn)
	return n
}

// StartCluster runs size members, each listing all of them as the members of
// record.
func StartCluster(t testing.TB, config string, size int, extra ...string) []*Node {
	t.Helper()
	ids := make([]string, size)
	for i := range ids {
		ids[i] = FreeGossipAddr(t)
	}
	nodes := make([]*Node, size)
	for i, id := range ids {
		nodes[i] = Start(t, config, id, ids, extra...)
	}
	return nodes
}

// IDs returns the nodes' member ids.
func IDs(nodes []*Node) []string {
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ID
	}
	return ids
}

// Addrs returns the nodes' gRPC addresses.
func Addrs(nodes []*Node) []string {
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Addr
	}
	return addrs
}

// Owner returns the node that owns pool when exactly nodes are live.
func Owner(pool string, nodes []*Node) *Node {
	id := cluster.Owner(pool, IDs(nodes))
	for _, n := range nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Others returns nodes without n.
func Others(nodes []*Node, n *Node) []*Node {
	return slices.DeleteFunc(slices.Clone(nodes), func(m *Node) bool { return m == n })
}

// Status returns n's view of the cluster (GetCluster), within a second.
func (n *Node) Status() (*quotadv1.GetClusterResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return n.Peer.GetCluster(ctx, &quotadv1.GetClusterRequest{})
}

// Formed reports whether nodes form a cluster serving pools pools: each has all
// of them as members of record (a member killed stays one), hears them and
// vouches for them (and no others), and together they own every pool. It says
// what is missing otherwise.
func Formed(nodes []*Node, pools int) (bool, string) {
	want := IDs(nodes)
	slices.Sort(want)
	owned := 0
	var views []string
	ok := true
	for _, n := range nodes {
		st, err := n.Status()
		if err != nil {
			return false, fmt.Sprintf("%s: %v", n.ID, err)
		}
		owned += int(st.GetOwnedPools())
		views = append(views, fmt.Sprintf("%s: record %v latest %v certified %v owns %d",
			n.ID, st.GetRecord(), st.GetLatest(), st.GetCertified(), st.GetOwnedPools()))
		for _, id := range want {
			if !slices.Contains(st.GetRecord(), id) {
				ok = false
			}
		}
		if !slices.Equal(st.GetLatest(), want) || !slices.Equal(st.GetCertified(), want) {
			ok = false
		}
	}
	if owned != pools {
		ok = false
	}
	return ok, fmt.Sprintf("%d of %d pools owned; %s", owned, pools, strings.Join(views, "; "))
}

// WaitFormed polls until nodes form a cluster serving pools pools (see Formed),
// failing the test after within. It returns how long it waited.
func WaitFormed(t testing.TB, nodes []*Node, pools int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, why := Formed(nodes, pools)
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("cluster not formed within %v: %s", within, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitFor polls cond every 10 ms until it holds, failing the test after within.
// It returns how long it waited.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}
