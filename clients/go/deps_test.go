package quotad

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoServerDependencies keeps the client light: importing it must not compile
// etcd, memberlist, or quotad's server, cluster or config packages.
func TestNoServerDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/quotad/quotad/clients/go").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"go.etcd.io",
		"hashicorp/memberlist",
		"github.com/quotad/quotad/server",
		"github.com/quotad/quotad/cluster",
		"github.com/quotad/quotad/config",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.Contains(dep, f) {
				t.Errorf("the client depends on %s", dep)
			}
		}
	}
}
