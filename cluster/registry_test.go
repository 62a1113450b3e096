package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/quotad/quotad/internal/etcdtest"
)

var quiet = slog.New(slog.DiscardHandler)

func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func keyExists(t *testing.T, cli *clientv3.Client, key string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	r, err := cli.Get(ctx, key, clientv3.WithCountOnly())
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return r.Count == 1
}

func nextNodes(t *testing.T, ch <-chan []Registered) []Registered {
	t.Helper()
	select {
	case nodes, ok := <-ch:
		if !ok {
			t.Fatal("node watch closed")
		}
		return nodes
	case <-time.After(5 * time.Second):
		t.Fatal("no node list delivered")
		return nil
	}
}

func TestRegistryKeepAliveAndDiscovery(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	cli := e.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch := WatchNodes(ctx, cli, "", 50*time.Millisecond)
	if nodes := nextNodes(t, watch); len(nodes) != 0 {
		t.Fatalf("nodes before any registration: %v", nodes)
	}

	opts := RegistryOptions{TTL: time.Second, Margin: 200 * time.Millisecond, Logger: quiet}
	a := Register(cli, Registered{ID: "a", Addr: "127.0.0.1:1"}, opts)
	defer a.Close()
	b := Register(cli, Registered{ID: "b", Addr: "127.0.0.1:2"}, opts)
	defer b.Close()
	waitUntil(t, 5*time.Second, "both registered", func() bool { return a.Valid() && b.Valid() })
	if left := time.Until(a.Deadline()); left <= 0 || left > 800*time.Millisecond {
		t.Errorf("deadline %v away, want within TTL - margin = 800ms", left)
	}
	var nodes []Registered
	waitUntil(t, 5*time.Second, "both discovered", func() bool {
		select {
		case nodes = <-watch:
		default:
		}
		return len(nodes) == 2
	})
	if fmt.Sprint(nodes) != "[{a 127.0.0.1:1} {b 127.0.0.1:2}]" {
		t.Errorf("discovered %v", nodes)
	}

	// Renewals keep the registration past several TTLs, moving the deadline on.
	first := a.Deadline()
	time.Sleep(1500 * time.Millisecond)
	if !a.Valid() || !keyExists(t, cli, a.Key()) {
		t.Fatal("registration lapsed although etcd was reachable")
	}
	if !a.Deadline().After(first.Add(time.Second)) {
		t.Errorf("deadline moved from %v to %v, want renewals to move it on", first, a.Deadline())
	}

	listed, _, err := ListNodes(ctx, cli, "")
	if err != nil || len(listed) != 2 {
		t.Fatalf("ListNodes: %v %v", listed, err)
	}

	// Close revokes: the node is gone at once, not after its TTL.
	b.Close()
	if keyExists(t, cli, b.Key()) {
		t.Error("key still there after Close")
	}
	waitUntil(t, 2*time.Second, "b to leave the discovered nodes", func() bool {
		select {
		case nodes = <-watch:
		default:
		}
		return len(nodes) == 1 && nodes[0].ID == "a"
	})
}

// TestRegistryDeadlineBoundsExpiry cuts a node off etcd: the node's deadline
// passes before etcd drops its key, and it registers again once reconnected.
func TestRegistryDeadlineBoundsExpiry(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	admin := e.Client(t)
	proxy := etcdtest.NewProxy(t, e)
	r := Register(etcdtest.Dial(t, proxy.Endpoints()), Registered{ID: "n", Addr: "127.0.0.1:1"},
		RegistryOptions{TTL: time.Second, Margin: 100 * time.Millisecond, Logger: quiet})
	defer r.Close()
	waitUntil(t, 5*time.Second, "registered", r.Valid)

	proxy.Cut()
	deadline := r.Deadline()
	for keyExists(t, admin, r.Key()) {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatal("the key never expired")
		}
		time.Sleep(5 * time.Millisecond)
	}
	gone := time.Now()
	if gone.Before(deadline) {
		t.Fatalf("the key expired %v before the node's deadline", deadline.Sub(gone))
	}
	if r.Valid() {
		t.Fatal("Valid after the key expired")
	}
	if !r.Deadline().Equal(deadline) {
		t.Errorf("deadline moved from %v to %v without a renewal", deadline, r.Deadline())
	}

	proxy.Heal()
	waitUntil(t, 5*time.Second, "registered again", func() bool { return r.Valid() && keyExists(t, admin, r.Key()) })
}
