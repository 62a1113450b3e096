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
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	script := walkthrough(t, string(readme))
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

// walkthrough returns the shell block that follows the walkthrough marker.
func walkthrough(t *testing.T, readme string) string {
	t.Helper()
	_, after, ok := strings.Cut(readme, "<!-- walkthrough")
	if !ok {
		t.Fatal("README.md has no walkthrough marker")
	}
	_, block, ok := strings.Cut(after, "```sh\n")
	if !ok {
		t.Fatal("no sh block after the walkthrough marker")
	}
	block, _, ok = strings.Cut(block, "```")
	if !ok {
		t.Fatal("unterminated walkthrough block")
	}
	return block
}
