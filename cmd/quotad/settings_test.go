package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSettingsPrecedence(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "quotad.yaml")
	err := os.WriteFile(cfg, []byte("server:\n  listen: 127.0.0.1:1111\n  state_dir: /from/file\n  log_level: warn\npools: []\n"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"QUOTAD_STATE_DIR": "/from/env", "QUOTAD_STATE_INTERVAL": "3s"}
	s, err := loadSettings([]string{"--config", cfg, "--log-level", "debug"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{
		Config: cfg, Listen: "127.0.0.1:1111", MetricsListen: "127.0.0.1:7071", StateDir: "/from/env",
		StateInterval: 3 * time.Second, ConfigInterval: time.Second, ShutdownGrace: 3 * time.Second,
		LogLevel: "debug", LogFormat: "text", TenantLabelLimit: 100, MaxRecvBytes: 1 << 20, NodeTTL: 10 * time.Second,
		Cluster: ClusterSettings{FenceAfter: time.Second, SuspectAfter: time.Second, Heartbeat: 100 * time.Millisecond},
	}
	if s != want {
		t.Errorf("settings\n got %+v\nwant %+v", s, want)
	}
}

func TestSettingsErrorsNameTheSetting(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "quotad.yaml")
	if err := os.WriteFile(cfg, []byte("server:\n  lisen: 127.0.0.1:1\n  state_interval: soon\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"bad env", []string{"--config", "/nonexistent"}, map[string]string{"QUOTAD_SHUTDOWN_GRACE": "x"}, []string{"QUOTAD_SHUTDOWN_GRACE", `"x"`}},
		{"file", []string{"--config", cfg}, nil, []string{"server.lisen is not a setting", `server.state_interval "soon"`}},
		{"extra args", []string{"--config", cfg, "now"}, nil, []string{"unexpected arguments"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadSettings(tc.args, func(k string) string { return tc.env[k] })
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// Values the node cannot run with are refused at start, naming the setting, not
// met later as a panic (a ticker of no interval) or a node that refuses every call.
func TestSettingsOutOfRange(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--state-interval", "0s"}, "state-interval 0s"},
		{[]string{"--state-interval", "-1s"}, "state-interval -1s"},
		{[]string{"--shutdown-grace", "-1s"}, "shutdown-grace -1s"},
		{[]string{"--max-recv-bytes", "0"}, "max-recv-bytes 0"},
		{[]string{"--tenant-label-limit", "-1"}, "tenant-label-limit -1"},
	} {
		_, err := loadSettings(append([]string{"--config", "/nonexistent"}, tc.args...), func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("loadSettings(%q): %v, want an error naming %q", tc.args, err, tc.want)
		}
	}
}
