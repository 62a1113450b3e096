// Package etcdtest runs a real single-member etcd server in the test process, on
// loopback, for tests of code that talks to etcd.
package etcdtest

import (
	"context"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// startTimeout bounds how long a start or restart may take before the test fails.
const startTimeout = 10 * time.Second

// Server is an embedded etcd. Its data directory and client URL survive Stop and
// Restart, so clients see the same etcd go away and come back with its data.
// Clients reach it through a Proxy, which Stop cuts first: etcd then stops at
// once instead of waiting for open watch streams to end. Methods are safe for
// concurrent use.
type Server struct {
	dir       string
	clientURL url.URL // where etcd listens
	peerURL   url.URL
	front     *Proxy // what clients dial

	mu   sync.Mutex // guards etcd
	etcd *embed.Etcd
}

// Start runs an etcd server on free loopback ports with a temporary data
// directory. It is stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		dir:       t.TempDir(),
		clientURL: url.URL{Scheme: "http", Host: freeAddr(t)},
		peerURL:   url.URL{Scheme: "http", Host: freeAddr(t)},
	}
	s.front = NewProxy(t, s)
	s.start(t)
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// freeAddr returns a loopback address with a port free at the time of the call.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("etcdtest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (s *Server) config() *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = "etcdtest"
	cfg.Dir = s.dir
	cfg.ListenClientUrls = []url.URL{s.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{s.clientURL}
	cfg.ListenPeerUrls = []url.URL{s.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{s.peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ListenMetricsUrls = nil
	// A single member elects itself after one election timeout: keep it short.
	cfg.TickMs = 10
	cfg.ElectionMs = 50
	cfg.UnsafeNoFsync = true
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	return cfg
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	e, err := embed.StartEtcd(s.config())
	if err != nil {
		t.Fatalf("etcdtest: start etcd on %s: %v", s.clientURL.Host, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		t.Fatalf("etcdtest: etcd failed while starting: %v", err)
	case <-time.After(startTimeout):
		e.Close()
		t.Fatalf("etcdtest: etcd not ready within %v", startTimeout)
	}
	s.mu.Lock()
	s.etcd = e
	s.mu.Unlock()
	s.front.Heal()
}

// Endpoints returns the client URLs to dial.
func (s *Server) Endpoints() []string { return s.front.Endpoints() }

// Addr returns the address etcd itself listens on, host:port.
func (s *Server) Addr() string { return s.clientURL.Host }

// Stop stops the server, keeping its data. Stopping a stopped server does nothing.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	e := s.etcd
	s.etcd = nil
	s.mu.Unlock()
	if e != nil {
		s.front.Cut()
		e.Close()
	}
}

// Restart starts a stopped server again on the same client URL, with its data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	running := s.etcd != nil
	s.mu.Unlock()
	if running {
		t.Fatal("etcdtest: Restart of a running server")
	}
	s.start(t)
}

// Client returns a client of the server, closed when the test ends.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return Dial(t, s.Endpoints())
}

// Dial returns a quiet client of endpoints that reconnects within a few hundred
// milliseconds of the server coming back. It is closed when the test ends.
func Dial(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints: endpoints,
		Logger:    zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 300 * time.Millisecond},
			MinConnectTimeout: time.Second,
		})},
	})
	if err != nil {
		t.Fatalf("etcdtest: client of %v: %v", endpoints, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Put writes key = value, failing the test on error.
func Put(t testing.TB, c *clientv3.Client, key, value string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.Put(ctx, key, value)
	if err != nil {
		t.Fatalf("etcdtest: put %s: %v", key, err)
	}
	return r.Header.Revision
}

// Delete deletes key, failing the test on error.
func Delete(t testing.TB, c *clientv3.Client, key string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.Delete(ctx, key)
	if err != nil {
		t.Fatalf("etcdtest: delete %s: %v", key, err)
	}
	return r.Header.Revision
}

// Compact compacts the history up to the current revision, failing the test on
// error.
func Compact(t testing.TB, c *clientv3.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.Get(ctx, "compact-probe")
	if err != nil {
		t.Fatalf("etcdtest: compact: %v", err)
	}
	if _, err := c.Compact(ctx, r.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("etcdtest: compact at %d: %v", r.Header.Revision, err)
	}
}
