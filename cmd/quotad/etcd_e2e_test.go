package main_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	quotad "github.com/quotad/quotad/clients/go"
	"github.com/quotad/quotad/cluster"
	"github.com/quotad/quotad/internal/etcdtest"
	"github.com/quotad/quotad/internal/testnode"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

func livePool(amount int) string {
	return fmt.Sprintf("limits: [{resource: requests, amount: %d, per: 1s, burst: 5, initial: full}]\n", amount)
}

// TestEtcdNodeFollowsLiveChanges runs a node on pools in etcd: it follows a limit
// change within a second and grants at the new rate, refuses a bad value, and
// keeps granting while etcd is down, then resumes watching when it is back.
func TestEtcdNodeFollowsLiveChanges(t *testing.T) {
	e := etcdtest.Start(t)
	admin := e.Client(t)
	const key = "/quotad/pools/live"
	etcdtest.Put(t, admin, key, livePool(5))
	n := testnode.Start(t, "--etcd-endpoints", strings.Join(e.Endpoints(), ","), "--state-dir", t.TempDir(), "--metrics-listen", "127.0.0.1:0")
	api := rawAPI(t, n.Addr)
	c := dial(t, n.Addr)
	ctx := context.Background()
	amount := func() int64 {
		st, err := api.GetPool(ctx, &quotadv1.GetPoolRequest{Pool: "live"})
		if err != nil {
			t.Fatal(err)
		}
		return st.GetLimits()[0].GetAmount()
	}
	if got := amount(); got != 5 {
		t.Fatalf("amount %d at start, want 5", got)
	}
	checkRegistered(t, admin, n.Addr)

	changed := time.Now()
	etcdtest.Put(t, admin, key, livePool(50))
	waitFor(t, time.Second, "the node to follow the change", func() bool { return amount() == 50 })
	t.Logf("change followed in %v", time.Since(changed).Round(time.Millisecond))
	if granted := grantRate(t, c, 600*time.Millisecond); granted < 22 || granted > 36 {
		t.Errorf("%d try-only grants in 600ms after the change, want about 30 (50/s)", granted)
	}

	etcdtest.Put(t, admin, key, "limits: [{resource: requests, amount: -1, per: 1s}]\n")
	waitFor(t, 2*time.Second, "the bad value to be refused", func() bool { return strings.Contains(n.Log(), "config value rejected") })
	if !strings.Contains(n.Log(), key) || amount() != 50 {
		t.Errorf("the refusal does not name %s, or the pool lost its last good amount (%d):\n%s", key, amount(), n.Log())
	}
	wantMetric(t, n, `quotad_config_rejected_total{source="etcd"} 1`)
	if st, err := api.GetPool(ctx, &quotadv1.GetPoolRequest{Pool: "live"}); err != nil || !strings.Contains(st.GetConfigError(), "amount") {
		t.Errorf("GetPool config_error %q (%v), want the refusal's reason", st.GetConfigError(), err)
	}
	wantMetric(t, n, `quotad_config_source_connected{source="etcd"} 1`)

	// etcd goes away: health reports it, the node keeps granting.
	health := healthClient(t, n.Addr)
	e.Stop(t)
	waitFor(t, 5*time.Second, "quotad.config NOT_SERVING", func() bool { return healthOf(t, health, "quotad.config") == healthpb.HealthCheckResponse_NOT_SERVING })
	wantMetric(t, n, `quotad_config_source_connected{source="etcd"} 0`)
	if st := healthOf(t, health, ""); st != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("overall health %v while etcd is down, want SERVING", st)
	}
	if granted := grantRate(t, c, 300*time.Millisecond); granted < 10 {
		t.Errorf("%d grants in 300ms while etcd is down, want about 15", granted)
	}

	e.Restart(t)
	waitFor(t, 5*time.Second, "quotad.config SERVING", func() bool { return healthOf(t, health, "quotad.config") == healthpb.HealthCheckResponse_SERVING })
	etcdtest.Put(t, admin, key, livePool(20))
	waitFor(t, 3*time.Second, "the change made after etcd came back", func() bool { return amount() == 20 })
}

// grantRate drains the pool's bucket, then counts try-only grants over d.
func grantRate(t *testing.T, c *quotad.Client, d time.Duration) int {
	t.Helper()
	ctx := context.Background()
	try := func() bool {
		_, err := c.Acquire(ctx, "live", quotad.Cost{Requests: 1}, quotad.WithMaxWait(0))
		var ng *quotad.NotGrantedError
		if err != nil && !errors.As(err, &ng) {
			t.Fatalf("acquire: %v", err)
		}
		return err == nil
	}
	for try() {
	}
	granted := 0
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		if try() {
			granted++
		}
	}
	return granted
}

func checkRegistered(t *testing.T, admin *clientv3.Client, addr string) {
	t.Helper()
	var nodes []cluster.Registered
	waitFor(t, 3*time.Second, "the node's registration", func() bool {
		var err error
		nodes, _, err = cluster.ListNodes(context.Background(), admin, "")
		return err == nil && len(nodes) == 1
	})
	if nodes[0].Addr != addr {
		t.Errorf("registered %+v, want address %s", nodes[0], addr)
	}
}

func wantMetric(t *testing.T, n *testnode.Node, line string) {
	t.Helper()
	resp, err := http.Get("http://" + n.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), line+"\n") {
		t.Errorf("metrics lack %s", line)
	}
}

func healthClient(t *testing.T, addr string) healthpb.HealthClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

func healthOf(t *testing.T, h healthpb.HealthClient, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	r, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN
	}
	return r.GetStatus()
}
