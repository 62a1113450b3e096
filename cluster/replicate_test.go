package cluster

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/quotad/quotad/internal/clock"
	"github.com/quotad/quotad/limiter"
	statev1 "github.com/quotad/quotad/proto/quotad/state/v1"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

var replPools = map[string]limiter.Config{"p": {
	Limits: []limiter.Limit{
		{Resource: limiter.Requests, Amount: 60, Period: time.Minute, Initial: 1},
		{Resource: limiter.Requests, Amount: 1000, Period: 24 * time.Hour, Initial: 1},
	},
}}

func newLimiter(t *testing.T) *limiter.Limiter {
	t.Helper()
	l := limiter.New(clock.NewFake(time.Unix(1000, 0)))
	if err := l.Apply(replPools); err != nil {
		t.Fatal(err)
	}
	return l
}

// serveStore serves a ReplicaStore on loopback and counts Replicate calls.
func serveStore(t *testing.T, store *ReplicaStore) (string, *atomic.Int32) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	calls := new(atomic.Int32)
	gs := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		calls.Add(1)
		return h(ctx, req)
	}))
	quotadv1.RegisterPeerServiceServer(gs, store)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return lis.Addr().String(), calls
}

func TestReplicationSendsChangesAndTakeoverStartsFromThem(t *testing.T) {
	owner := newLimiter(t)
	store := NewReplicaStore(clock.NewFake(time.Unix(5000, 0)))
	addr, calls := serveStore(t, store)
	paced := clock.NewFake(time.Unix(0, 0))
	r := NewReplicator(owner, func(string) (string, bool) { return addr, true }, ReplicatorOptions{Self: "owner", Clock: paced})
	defer r.close()
	ctx := context.Background()
	for range 10 {
		if d, err := owner.Acquire(ctx, "p", limiter.Request{MaxWait: -1}); err != nil || !d.Granted {
			t.Fatalf("acquire: %+v %v", d, err)
		}
	}
	r.Round(ctx)
	r.Round(ctx) // nothing changed: nothing sent
	if got := calls.Load(); got != 1 {
		t.Errorf("%d Replicate calls for one change, want 1", got)
	}
	if _, err := owner.Acquire(ctx, "p", limiter.Request{MaxWait: -1}); err != nil {
		t.Fatal(err)
	}
	r.Round(ctx) // a pool is snapshotted at most once per interval
	if got := calls.Load(); got != 1 {
		t.Errorf("%d Replicate calls within one interval, want 1", got)
	}
	paced.Advance(100 * time.Millisecond)
	r.Round(ctx)
	if got := calls.Load(); got != 2 {
		t.Errorf("%d Replicate calls after a second change, want 2", got)
	}

	rep, age, ok := store.Take("p")
	if !ok || rep.From != "owner" || age != 0 {
		t.Fatalf("replica %+v age %v ok %v", rep, age, ok)
	}
	heir := newLimiter(t)
	if err := heir.Own("p", limiter.OwnOptions{State: rep.State, Elapsed: age, TakeOver: true}); err != nil {
		t.Fatal(err)
	}
	st, err := heir.Status("p")
	if err != nil {
		t.Fatal(err)
	}
	// The owner held 49 of 60 per minute: the old owner could have granted all 49
	// more before it stopped, so the heir charges them to both limits.
	if minute, day := st.Limits[0].Level, st.Limits[1].Level; minute != 0 || day != 1000-11-49 {
		t.Errorf("after takeover: per minute %d, per day %d; want 0 and %d", minute, day, 1000-11-49)
	}
	if st.InFlight != 11 {
		t.Errorf("in flight %d after takeover, want the owner's 11 open leases", st.InFlight)
	}
}

func TestReplicationRetriesAnUnreachableHeir(t *testing.T) {
	owner := newLimiter(t)
	store := NewReplicaStore(clock.Real())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nobody listens there yet
	r := NewReplicator(owner, func(string) (string, bool) { return addr, true }, ReplicatorOptions{Self: "owner"})
	defer r.close()
	ctx := context.Background()
	if _, err := owner.Acquire(ctx, "p", limiter.Request{MaxWait: -1}); err != nil {
		t.Fatal(err)
	}
	r.Round(ctx) // fails
	lis, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s was taken meanwhile: %v", addr, err)
	}
	gs := grpc.NewServer()
	quotadv1.RegisterPeerServiceServer(gs, store)
	go gs.Serve(lis)
	defer gs.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.Round(ctx)
		if _, _, ok := store.Take("p"); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the state never reached the heir once it listened")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestReplicaStoreKeepsTheNewest(t *testing.T) {
	store := NewReplicaStore(clock.Real())
	ctx := context.Background()
	send := func(from string, version uint64) uint32 {
		resp, err := store.Replicate(ctx, &quotadv1.ReplicateRequest{From: from, Pools: []*statev1.PoolState{{Pool: "p", FormatVersion: 1, Version: version}}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStored()
	}
	if send("a", 5) != 1 || send("a", 4) != 0 || send("a", 6) != 1 || send("b", 1) != 1 {
		t.Error("store kept an older state from the same sender, or refused a new sender's")
	}
	resp, _ := store.Replicate(ctx, &quotadv1.ReplicateRequest{From: "a", Pools: []*statev1.PoolState{{Pool: "q", FormatVersion: limiter.StateFormat + 1}}})
	if resp.GetStored() != 0 {
		t.Error("stored a state of a newer format")
	}
}

func TestLookingAtAPoolIsNoChange(t *testing.T) {
	owner := newLimiter(t)
	store := NewReplicaStore(clock.Real())
	addr, calls := serveStore(t, store)
	r := NewReplicator(owner, func(string) (string, bool) { return addr, true }, ReplicatorOptions{Self: "owner"})
	defer r.close()
	ctx := context.Background()
	r.Round(ctx)
	for range 3 {
		if _, err := owner.Status("p"); err != nil {
			t.Fatal(err)
		}
	}
	r.Round(ctx)
	if got := calls.Load(); got != 1 {
		t.Errorf("%d Replicate calls, want 1: GetPool and metrics scrapes are no change", got)
	}
}
