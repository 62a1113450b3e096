package main

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"gopkg.in/yaml.v3"

	"github.com/quotad/quotad/config"
)

// Settings are everything `quotad serve` can be told, in one place. Each field is a
// flag; the same setting can come from the environment (QUOTAD_ + the flag name in
// upper case, dashes as underscores) or from the `server:` section of the config
// file (the flag name with underscores). A flag beats the environment, which beats
// the file, which beats the default.
type Settings struct {
	Config           string
	Listen           string
	MetricsListen    string
	StateDir         string
	StateInterval    time.Duration
	ConfigInterval   time.Duration
	ShutdownGrace    time.Duration
	LogLevel         string
	LogFormat        string
	TenantLabelLimit int
	MaxRecvBytes     int
	NodeTTL          time.Duration
	Etcd             EtcdSettings
	Cluster          ClusterSettings
}

// ClusterSettings make the node one of a cluster (when GossipListen is set).
type ClusterSettings struct {
	GossipListen    string
	GossipAdvertise string
	Join            string // comma-separated gossip addresses
	GossipKey       string // base64, 16, 24 or 32 bytes
	FenceAfter      time.Duration
	SuspectAfter    time.Duration
	Heartbeat       time.Duration
	BlockFile       string
}

func (c *ClusterSettings) defineFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.GossipListen, "gossip-listen", "", "gossip listen address, host:port; when set the node joins a cluster")
	fs.StringVar(&c.GossipAdvertise, "gossip-advertise", "", "gossip address peers reach this node at (default: the bound one)")
	fs.StringVar(&c.Join, "join", "", "gossip addresses of the other members, comma-separated (without etcd: the members of record)")
	fs.StringVar(&c.GossipKey, "gossip-key", "", "base64 key (16, 24 or 32 bytes) encrypting gossip; the same on every node (prefer QUOTAD_GOSSIP_KEY)")
	fs.DurationVar(&c.FenceAfter, "fence-after", time.Second, "a node that has not heard a majority for this long stops granting")
	fs.DurationVar(&c.SuspectAfter, "suspect-after", time.Second, "a member not heard for this long is taken as gone and its pools move")
	fs.DurationVar(&c.Heartbeat, "heartbeat-interval", 100*time.Millisecond, "how often members exchange heartbeats and replicate pool state")
	fs.StringVar(&c.BlockFile, "gossip-block-file", "", "partition drill: cut gossip with the peers whose gossip addresses this file lists, one per line (followed live; needs a fixed gossip port)")
}

// joins returns the --join addresses.
func (c ClusterSettings) joins() []string {
	var out []string
	for a := range strings.SplitSeq(c.Join, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// key decodes --gossip-key.
func (c ClusterSettings) key() ([]byte, error) {
	if c.GossipKey == "" {
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(c.GossipKey)
	if err != nil {
		return nil, fmt.Errorf("gossip-key: not base64: %w", err)
	}
	if n := len(k); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("gossip-key: %d bytes; want 16, 24 or 32", n)
	}
	return k, nil
}

func (c ClusterSettings) check() []error {
	var errs []error
	if c.GossipListen == "" {
		if c.Join != "" || c.GossipKey != "" {
			errs = append(errs, errors.New("join and gossip-key need gossip-listen"))
		}
		return errs
	}
	if _, err := c.key(); err != nil {
		errs = append(errs, err)
	}
	if c.FenceAfter < 10*c.Heartbeat || c.Heartbeat <= 0 {
		errs = append(errs, fmt.Errorf("fence-after %v must be at least 10 heartbeat-intervals (%v)", c.FenceAfter, c.Heartbeat))
	}
	if c.SuspectAfter < 3*c.Heartbeat {
		errs = append(errs, fmt.Errorf("suspect-after %v must be at least 3 heartbeat-intervals (%v)", c.SuspectAfter, c.Heartbeat))
	}
	return errs
}

// defineFlags registers one flag per setting, with its default.
func (s *Settings) defineFlags(fs *flag.FlagSet) {
	fs.StringVar(&s.Config, "config", "quotad.yaml", "pool configuration file (YAML), reloaded on change")
	fs.StringVar(&s.Listen, "listen", "127.0.0.1:7070", "gRPC listen address")
	fs.StringVar(&s.MetricsListen, "metrics-listen", "127.0.0.1:7071", "Prometheus /metrics listen address (empty: off)")
	fs.StringVar(&s.StateDir, "state-dir", "", "directory where pool state is saved, so a restart keeps today's usage (empty: not saved)")
	fs.DurationVar(&s.StateInterval, "state-interval", 10*time.Second, "how often pool state is saved to --state-dir")
	fs.DurationVar(&s.ConfigInterval, "config-interval", time.Second, "how often the config file is checked for changes")
	fs.DurationVar(&s.ShutdownGrace, "shutdown-grace", 3*time.Second, "how long SIGTERM waits for calls in progress")
	fs.StringVar(&s.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&s.LogFormat, "log-format", "text", "log format: text or json")
	fs.IntVar(&s.TenantLabelLimit, "tenant-label-limit", 100, "how many (pool, tenant) pairs get their own metric labels")
	fs.IntVar(&s.MaxRecvBytes, "max-recv-bytes", 1<<20, "largest gRPC request accepted, in bytes")
	fs.DurationVar(&s.NodeTTL, "etcd-node-ttl", 10*time.Second, "lease of the node's registration in etcd, whole seconds; in a cluster, a dead node's pools move once it expires")
	s.Etcd.defineFlags(fs)
	s.Cluster.defineFlags(fs)
}

// loadSettings parses args, then fills every flag not given from env, then from the
// config file's server section.
func loadSettings(args []string, env func(string) string) (Settings, error) {
	var s Settings
	fs := flag.NewFlagSet("quotad serve", flag.ContinueOnError)
	s.defineFlags(fs)
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	errs := settingsFromEnv(fs, given, env)
	fileSettings, err := readServerSection(s.Config)
	if err != nil {
		return s, err
	}
	fs.VisitAll(func(f *flag.Flag) {
		key := strings.ReplaceAll(f.Name, "-", "_")
		v, ok := fileSettings[key]
		if !ok || given[f.Name] {
			return
		}
		delete(fileSettings, key)
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s: server.%s %q: %w", s.Config, key, v, err))
		}
	})
	for key := range fileSettings {
		if fs.Lookup(strings.ReplaceAll(key, "_", "-")) == nil {
			errs = append(errs, fmt.Errorf("%s: server.%s is not a setting", s.Config, key))
		}
	}
	if len(errs) == 0 {
		errs = s.check()
	}
	return s, errors.Join(errs...)
}

// check refuses values the node cannot run with, naming the setting.
func (s Settings) check() []error {
	var errs []error
	if s.StateInterval <= 0 {
		errs = append(errs, fmt.Errorf("state-interval %v must be positive", s.StateInterval))
	}
	if s.ShutdownGrace < 0 {
		errs = append(errs, fmt.Errorf("shutdown-grace %v must not be negative", s.ShutdownGrace))
	}
	if s.MaxRecvBytes <= 0 {
		errs = append(errs, fmt.Errorf("max-recv-bytes %d must be positive", s.MaxRecvBytes))
	}
	if s.NodeTTL < time.Second || s.NodeTTL%time.Second != 0 {
		errs = append(errs, fmt.Errorf("etcd-node-ttl %v must be whole seconds, at least 1s", s.NodeTTL))
	}
	if s.TenantLabelLimit < 0 {
		errs = append(errs, fmt.Errorf("tenant-label-limit %d must not be negative", s.TenantLabelLimit))
	}
	return append(errs, s.Cluster.check()...)
}

// settingsFromEnv sets every flag of fs not in given from its environment
// variable, QUOTAD_ + the flag name in upper case with underscores, and adds it to
// given.
func settingsFromEnv(fs *flag.FlagSet, given map[string]bool, env func(string) string) []error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		name := "QUOTAD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := env(name); v != "" {
			given[f.Name] = true
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
			}
		}
	})
	return errs
}

// readServerSection returns the scalar settings of the file's `server:` section. A
// missing file has none (the config source reports it).
func readServerSection(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return map[string]string{}, nil
	}
	var doc struct {
		Server map[string]yaml.Node `yaml:"server"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make(map[string]string, len(doc.Server))
	for k, n := range doc.Server {
		if n.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%s: server.%s must be a single value", path, k)
		}
		out[k] = n.Value
	}
	return out, nil
}

// EtcdSettings say where the pools live in etcd and how to reach it. `quotad
// serve` and `quotad pools` share them, flags and QUOTAD_ETCD_* variables alike.
type EtcdSettings struct {
	Endpoints string // comma-separated; empty: serve reads --config instead
	Prefix    string // empty: config.DefaultEtcdPrefix
	CA        string
	Cert      string
	Key       string
	Username  string
	Password  string
}

func (e *EtcdSettings) defineFlags(fs *flag.FlagSet) {
	fs.StringVar(&e.Endpoints, "etcd-endpoints", "", "etcd endpoints, comma-separated; when set, pools come from etcd instead of --config")
	fs.StringVar(&e.Prefix, "etcd-prefix", "", "etcd key prefix of the pools (default "+config.DefaultEtcdPrefix+")")
	fs.StringVar(&e.CA, "etcd-ca", "", "CA certificate (PEM) that signs the etcd server's certificate")
	fs.StringVar(&e.Cert, "etcd-cert", "", "client certificate (PEM) for etcd, with --etcd-key")
	fs.StringVar(&e.Key, "etcd-key", "", "client private key (PEM) for etcd, with --etcd-cert")
	fs.StringVar(&e.Username, "etcd-username", "", "etcd user name")
	fs.StringVar(&e.Password, "etcd-password", "", "etcd password (prefer QUOTAD_ETCD_PASSWORD: flags show in ps)")
}

// prefix returns the pools' key prefix, ending with a slash.
func (e EtcdSettings) prefix() string {
	p := cmp.Or(e.Prefix, config.DefaultEtcdPrefix)
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// client returns an etcd client. It does not wait for etcd: the first request
// does. The caller closes it.
func (e EtcdSettings) client() (*clientv3.Client, error) {
	var endpoints []string
	for ep := range strings.SplitSeq(e.Endpoints, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			endpoints = append(endpoints, ep)
		}
	}
	if len(endpoints) == 0 {
		return nil, errors.New("no etcd endpoints: set --etcd-endpoints or QUOTAD_ETCD_ENDPOINTS")
	}
	tlsCfg, err := e.tlsConfig()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		TLS:                  tlsCfg,
		Username:             e.Username,
		Password:             e.Password,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		Logger:               zap.NewNop(), // the config source and registry log what matters
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
			MinConnectTimeout: 3 * time.Second,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", endpoints, err)
	}
	return cli, nil
}

// tlsConfig returns the TLS settings, or nil when none is set.
func (e EtcdSettings) tlsConfig() (*tls.Config, error) {
	if e.CA == "" && e.Cert == "" && e.Key == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if e.CA != "" {
		pem, err := os.ReadFile(e.CA)
		if err != nil {
			return nil, fmt.Errorf("etcd-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd-ca %s: no PEM certificate in it", e.CA)
		}
	}
	if (e.Cert == "") != (e.Key == "") {
		return nil, errors.New("etcd-cert and etcd-key go together: set both or neither")
	}
	if e.Cert != "" {
		cert, err := tls.LoadX509KeyPair(e.Cert, e.Key)
		if err != nil {
			return nil, fmt.Errorf("etcd-cert %s, etcd-key %s: %w", e.Cert, e.Key, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
