package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
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
	return s, errors.Join(errs...)
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
