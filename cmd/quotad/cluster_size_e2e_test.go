package main_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quotad/quotad/internal/clustertest"
	statev1 "github.com/quotad/quotad/proto/quotad/state/v1"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// TestClusterPeerStatesMayExceedMaxRecvBytes: a clustered node still refuses
// client requests over --max-recv-bytes, but takes a pool state from a peer that
// is larger (a busy pool's tombstones).
func TestClusterPeerStatesMayExceedMaxRecvBytes(t *testing.T) {
	config := filepath.Join(t.TempDir(), "pools.yaml")
	if err := os.WriteFile(config, []byte("pools:\n  - name: p\n    limits: [{resource: requests, amount: 10, per: 1s}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := clustertest.FreeGossipAddr(t)
	n := clustertest.Start(t, config, id, []string{id}, "--max-recv-bytes", "4096")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	_, err := n.Quota.Acquire(ctx, &quotadv1.AcquireRequest{Pool: "p", RequestId: strings.Repeat("x", 5000)})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "max-recv-bytes") {
		t.Fatalf("oversized Acquire: %v, want RESOURCE_EXHAUSTED naming max-recv-bytes", err)
	}
	st := &statev1.PoolState{FormatVersion: 1, Pool: "p"}
	for i := range 200 {
		st.Leases = append(st.Leases, &statev1.LeaseState{Sequence: uint64(i + 1), RequestId: strings.Repeat("r", 100)})
	}
	if _, err := n.Peer.Replicate(ctx, &quotadv1.ReplicateRequest{From: id, Pools: []*statev1.PoolState{st}}); err != nil {
		t.Fatalf("a 20 KB state from a member: %v", err)
	}
}
