package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quotad/quotad/internal/testnode"
)

// TestReadmeWalkthrough runs the README's grpcurl walk-through, as written, against
// a node started like `make run` does (on a free port instead of 7070).
func TestReadmeWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds grpcurl")
	}
	root, script := walkthrough(t, "<!-- walkthrough")
	n := testnode.Start(t, "--config", filepath.Join(root, "examples/quotad.yaml"), "--metrics-listen", "")
	script = strings.ReplaceAll(script, "localhost:7070", n.Addr)

	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("walk-through failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		"quotad.v1.QuotaService.Acquire",
		`"grantId"`,
		`"settlement": "SETTLEMENT_SETTLED"`,
		`"retryAfter"`,
		`"resource": "requests"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("walk-through output lacks %s:\n%s", want, out)
		}
	}
}

// TestReadmeClusterWalkthrough runs the README's three-node example as written,
// with the binary under test in place of `make build`'s.
func TestReadmeClusterWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	root, script := walkthrough(t, "<!-- cluster-walkthrough")
	script = strings.Replace(script, "make build\n", "", 1)
	script = strings.ReplaceAll(script, "bin/quotad", testnode.Binary(t))
	script = strings.ReplaceAll(script, "examples/quotad.yaml", filepath.Join(root, "examples/quotad.yaml"))
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cluster walk-through failed: %v\n%s", err, out)
	}
	if got := strings.Count(string(out), "hears:     127.0.0.1:7201 127.0.0.1:7202 127.0.0.1:7203"); got != 2 {
		t.Errorf("want both nodes to hear all three members:\n%s", out)
	}
	if !strings.Contains(string(out), "owns:") {
		t.Errorf("no pools owned:\n%s", out)
	}
}

// walkthrough returns the module's root and the README's shell block that
// follows marker.
func walkthrough(t *testing.T, marker string) (root, script string) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), marker)
	if !ok {
		t.Fatalf("README.md has no %q marker", marker)
	}
	_, block, ok := strings.Cut(after, "```sh\n")
	if !ok {
		t.Fatal("no sh block after the walkthrough marker")
	}
	block, _, ok = strings.Cut(block, "```")
	if !ok {
		t.Fatal("unterminated walkthrough block")
	}
	return root, block
}
