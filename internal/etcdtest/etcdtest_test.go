package etcdtest

import (
	"context"
	"testing"
	"time"
)

func TestEtcdStopRestartKeepsData(t *testing.T) {
	start := time.Now()
	s := Start(t)
	t.Logf("started in %v", time.Since(start))
	c := s.Client(t)
	Put(t, c, "k", "v1")

	s.Stop(t)
	s.Restart(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v1" {
		t.Fatalf("after restart k = %v, want v1", r.Kvs)
	}
}

func TestEtcdProxyCut(t *testing.T) {
	s := Start(t)
	p := NewProxy(t, s)
	c := Dial(t, p.Endpoints())
	Put(t, c, "k", "v")
	p.Cut()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Get(ctx, "k"); err == nil {
		t.Fatal("get through a cut proxy succeeded")
	}
	p.Heal()
	Put(t, c, "k", "v2")
}
