package cluster

import (
	"fmt"
	"net"
	"slices"
	"testing"
	"time"
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
	if mem.GRPC != "127.0.0.1:7002" || mem.Format != StateFormat || mem.Draining {
		t.Errorf("member metadata %+v", mem)
	}
	if err := nodes[2].SetDraining(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return nodes[0].Members()[2].Draining })

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

func waitFor(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", within)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
