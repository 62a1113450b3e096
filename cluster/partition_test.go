package cluster_test

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/quotad/quotad/cluster"
	"github.com/quotad/quotad/internal/clock"
	"github.com/quotad/quotad/internal/clustertest"
	"github.com/quotad/quotad/internal/configtest"
	"github.com/quotad/quotad/limiter"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
	"github.com/quotad/quotad/server"
)

// A partition, in-process: three nodes with real memberlist, real gRPC servers on
// loopback and real clients, whose gossip goes through a fault-injecting
// transport. The partition cuts gossip (heartbeats, so the fence) between the
// owner of a pool and the two others for longer than every detection and fence
// timeout, then heals.

const partitionPools = `
pools:
  - name: shared
    limits:
      - {resource: requests, amount: 20, per: 1s}
`

type testMember struct {
	node *cluster.Node
	ft   *cluster.FaultTransport
	gs   *grpc.Server
	addr string // gRPC
}

func startTestMember(t *testing.T, gossip string, join []string, fence cluster.QuorumConfig) *testMember {
	t.Helper()
	lim := limiter.NewClustered(clock.Real())
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := server.New(lim, server.NewMetrics(lim, 10), logger)
	configtest.Apply(t, srv, partitionPools)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ft, err := cluster.NewFaultTransport(gossip)
	if err != nil {
		t.Fatal(err)
	}
	node, err := cluster.StartNode(lim, lis.Addr().String(), cluster.NodeConfig{
		Gossip:         cluster.MembershipConfig{Bind: gossip, Join: join, Transport: ft},
		Fence:          fence,
		HeartbeatEvery: 50 * time.Millisecond,
		Logger:         logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(node.Interceptor()))
	quotadv1.RegisterQuotaServiceServer(gs, srv)
	quotadv1.RegisterPeerServiceServer(gs, node.PeerServer())
	go gs.Serve(lis)
	m := &testMember{node: node, ft: ft, gs: gs, addr: lis.Addr().String()}
	t.Cleanup(func() {
		gs.Stop()
		node.Close(false)
		lim.Close()
	})
	return m
}

func TestPartitionMajoritySideServesAndNothingOverdraws(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 15 s")
	}
	fence := cluster.QuorumConfig{FenceAfter: 500 * time.Millisecond, SuspectAfter: 500 * time.Millisecond}
	ids := []string{clustertest.FreeGossipAddr(t), clustertest.FreeGossipAddr(t), clustertest.FreeGossipAddr(t)}
	var members []*testMember
	for _, id := range ids {
		members = append(members, startTestMember(t, id, ids, fence))
	}
	clustertest.WaitFor(t, 10*time.Second, "the cluster forms", func() bool {
		owned := 0
		for _, m := range members {
			st := m.node.Status()
			if len(st.Certified) != 3 {
				return false
			}
			owned += st.Owned
		}
		return owned == 1
	})
	ownerID := cluster.Owner("shared", ids)
	var owner *testMember
	var others []*testMember
	for i, m := range members {
		if ids[i] == ownerID {
			owner = m
		} else {
			others = append(others, m)
		}
	}
	var addrs []string
	for _, m := range members {
		addrs = append(addrs, m.addr)
	}
	load := clustertest.StartLoad(t, "shared", addrs, 6)

	clustertest.WaitFor(t, 5*time.Second, "grants flow", func() bool { return load.Count() > 20 })
	cut := time.Now()
	owner.ft.Block(others[0].node.ID(), others[1].node.ID())
	for _, m := range others {
		m.ft.Block(owner.node.ID())
	}
	// Well past detection, fence and takeover: the majority side serves.
	time.Sleep(4 * time.Second)
	if n := clustertest.CountBetween(load.Grants(), cut.Add(2500*time.Millisecond), time.Now()); n < 20 {
		t.Errorf("the majority side granted %d in the last 1.5 s of the partition; want it serving (20/s)", n)
	}
	healed := time.Now()
	owner.ft.Block()
	for _, m := range others {
		m.ft.Block()
	}
	time.Sleep(5 * time.Second) // the checks cover 10 s: the partition, the healing, after
	grants := load.Stop()
	// The pool starts empty and every takeover starts empty: the bucket never
	// needs its capacity; 20 ms of refill (0.4) cover grants timed at receipt.
	replay := clustertest.ReplayBucket(grants, load.Start, 20, 20+0.4, 20+0.4)
	if !replay.OK() {
		t.Fatalf("over the limit: %v", replay)
	}
	if n := clustertest.CountBetween(grants, healed.Add(3*time.Second), time.Now()); n < 20 {
		t.Errorf("after healing: %d grants in the last 2 s", n)
	}
	t.Logf("partition: %v; healed at %v", replay, healed.Sub(load.Start).Round(time.Millisecond))
}
