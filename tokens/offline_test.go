package tokens

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"testing"
)

const offlineChildEnv = "QUOTAD_TOKENS_OFFLINE_CHILD"

// TestCountingIsOffline builds every encoder in a fresh process whose HTTP
// client fails on any request, whose proxies point to a closed port and whose
// tiktoken cache directories are empty, then checks that the counts are right
// and nothing was written to the cache directories.
func TestCountingIsOffline(t *testing.T) {
	if os.Getenv(offlineChildEnv) == "1" {
		offlineChild()
		return
	}
	cache := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCountingIsOffline$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		offlineChildEnv+"=1",
		"HTTP_PROXY=http://127.0.0.1:1", "HTTPS_PROXY=http://127.0.0.1:1",
		"http_proxy=http://127.0.0.1:1", "https_proxy=http://127.0.0.1:1",
		"NO_PROXY=", "no_proxy=",
		"TIKTOKEN_CACHE_DIR="+cache, "DATA_GYM_CACHE_DIR="+cache, "TMPDIR="+cache,
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("offline child failed: %v\n%s", err, out)
	}
	entries, err := os.ReadDir(cache)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("cache directory written to: %v", entries)
	}
}

// offlineChild runs in the child process; it exits non-zero on failure.
func offlineChild() {
	http.DefaultTransport = failingTransport{}
	c, err := NewCounter()
	if err != nil {
		fail(err)
	}
	for _, model := range []string{CL100kBase, O200kBase, O200kHarmony} {
		got, err := c.CountText(model, "Hello, world! This is a simple sentence.")
		if err != nil {
			fail(fmt.Errorf("%s: %w", model, err))
		}
		if got.Tokens != 10 || got.Estimated {
			fail(fmt.Errorf("%s: got %+v, want 10 exact tokens", model, got))
		}
	}
}

type failingTransport struct{}

func (failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	fail(fmt.Errorf("unexpected HTTP request to %s", r.URL))
	return nil, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "offline child:", err)
	os.Exit(3)
}
