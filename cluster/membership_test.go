package cluster

import (
	"fmt"
	"io"
	"log"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

var fastTimings = Timings{ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond, GossipInterval: 50 * time.Millisecond, SuspicionMult: 2}

func startNodes(t *testing.T, n int, key []byte) []*Membership {
	t.Helper()
	var nodes []*Membership
	var join []string
	for i := range n {
		m, err := StartMembership(MembershipConfig{
			Name: fmt.Sprintf("node-%d", i), Bind: "127.0.0.1:0", GRPC: fmt.Sprintf("127.0.0.1:%d", 7000+i),
			Join: join, GossipKey: key, Timings: fastTimings,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Shutdown() })
		nodes = append(nodes, m)
		join = []string{nodes[0].Addr()}
	}
	return nodes
}

// waitMembers waits until m sees exactly names.
func waitMembers(t *testing.T, m *Membership, within time.Duration, names ...string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.After(within)
	for {
		var got []string
		for _, mem := range m.Members() {
			got = append(got, mem.Name)
		}
		if slices.Equal(got, names) {
			return time.Since(start)
		}
		select {
		case <-m.Changes():
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("members %v after %v, want %v", got, within, names)
		}
	}
}

func TestMembershipJoinsDetectsDeathAndLeave(t *testing.T) {
	nodes := startNodes(t, 3, nil)
	for _, n := range nodes {
		waitMembers(t, n, 5*time.Second, "node-0", "node-1", "node-2")
	}
	mem := nodes[1].Members()[2]
	if mem.GRPC != "127.0.0.1:7002" || mem.Format != StateFormat {
		t.Errorf("member metadata %+v", mem)
	}

	nodes[2].Shutdown() // a crash: no leave message
	took := waitMembers(t, nodes[0], 5*time.Second, "node-0", "node-1")
	t.Logf("dead node noticed in %v", took)
	if err := nodes[1].Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, nodes[0], 5*time.Second, "node-0")
}

func TestMembershipEncryptedAndGarbageIgnored(t *testing.T) {
	key := []byte("0123456789abcdef")
	nodes := startNodes(t, 2, key)
	waitMembers(t, nodes[1], 5*time.Second, "node-0", "node-1")
	// Garbage on the gossip port, over UDP and TCP, is dropped; gossip goes on.
	for _, network := range []string{"udp", "tcp"} {
		c, err := net.Dial(network, nodes[0].Addr())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("\x00\xffnot a gossip packet at all"))
		c.Close()
	}
	// A node without the key cannot join.
	stranger, err := StartMembership(MembershipConfig{Name: "stranger", Bind: "127.0.0.1:0", Join: []string{nodes[0].Addr()}, Timings: fastTimings})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Shutdown()
	time.Sleep(300 * time.Millisecond) // a few gossip rounds: nothing should change
	waitMembers(t, nodes[0], time.Second, "node-0", "node-1")
}

// TestSendDeliversSmallAndLargeMessages: a heartbeat fits a UDP packet in small
// clusters; a larger one goes over TCP. Both arrive, encrypted.
func TestSendDeliversSmallAndLargeMessages(t *testing.T) {
	got := make(chan []byte, 2)
	key := []byte("0123456789abcdef")
	recv, err := StartMembership(MembershipConfig{Bind: "127.0.0.1:0", GossipKey: key, Timings: fastTimings,
		OnMessage: func(b []byte) { got <- append([]byte(nil), b...) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { recv.Shutdown() })
	send, err := StartMembership(MembershipConfig{Bind: "127.0.0.1:0", GossipKey: key, Timings: fastTimings})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { send.Shutdown() })
	for _, size := range []int{100, 5000} {
		msg := make([]byte, size)
		msg[size-1] = 7
		if err := send.Send(recv.Addr(), msg); err != nil {
			t.Fatalf("send %d bytes: %v", size, err)
		}
		select {
		case b := <-got:
			if len(b) != size || b[size-1] != 7 {
				t.Fatalf("received %d bytes, want %d", len(b), size)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%d-byte message not delivered", size)
		}
	}
}

// blackholeTransport is memberlist's transport, but a stream dialed to blackhole
// takes its whole timeout to fail, as to a host that drops every packet.
type blackholeTransport struct {
	*memberlist.NetTransport
	blackhole string
}

func (bt *blackholeTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if a.Addr == bt.blackhole {
		time.Sleep(timeout)
		return nil, fmt.Errorf("dial %s: i/o timeout", a.Addr)
	}
	return bt.NetTransport.DialAddressTimeout(a, timeout)
}

// TestSendDoesNotWaitForAnUnreachablePeer: a heartbeat too large for a packet
// goes over TCP; to a peer that does not answer, the dial takes its timeout
// (seconds). The node's loop sends every peer its heartbeat and renews its
// leases in turn, so Send must not wait for it: the other peers still get theirs.
func TestSendDoesNotWaitForAnUnreachablePeer(t *testing.T) {
	got := make(chan []byte, 4)
	recv, err := StartMembership(MembershipConfig{Bind: "127.0.0.1:0", Timings: fastTimings,
		OnMessage: func(b []byte) { got <- append([]byte(nil), b...) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { recv.Shutdown() })
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: 0,
		Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	const dead = "127.0.0.1:9"
	send, err := StartMembership(MembershipConfig{Bind: fmt.Sprintf("127.0.0.1:%d", nt.GetAutoBindPort()), Timings: fastTimings,
		Transport: &blackholeTransport{NetTransport: nt, blackhole: dead}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { send.Shutdown() })
	msg := make([]byte, 5000)
	var took time.Duration
	for range 3 { // three heartbeats, 100 ms apart
		start := time.Now()
		send.Send(dead, msg)
		if err := send.Send(recv.Addr(), msg); err != nil {
			t.Fatal(err)
		}
		took += time.Since(start)
		time.Sleep(100 * time.Millisecond)
	}
	if took > 300*time.Millisecond {
		t.Errorf("three rounds of sends took %v: each waited for the unreachable peer", took)
	}
	for range 3 {
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("heartbeat to the live peer not delivered")
		}
	}
}
