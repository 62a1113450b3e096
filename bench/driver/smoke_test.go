package driver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/quotad/quotad/internal/testnode"
)

// serviceEnv makes the test binary run as a service process of a fleet.
const serviceEnv = "QUOTAD_BENCH_SERVICE"

func TestMain(m *testing.M) {
	if os.Getenv(serviceEnv) == "1" {
		if err := ServeService(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "service:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSmoke runs the small scenario in every mode, with service processes:
// without a limiter the fleet's first burst must get 429s, and through quotad
// no call may get one and every call must complete.
func TestSmoke(t *testing.T) {
	bin := testnode.Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sc := Smoke()
	res, err := Run(ctx, sc, Options{
		QuotadBin: bin,
		ServiceCommand: func(ctx context.Context) *exec.Cmd {
			cmd := exec.CommandContext(ctx, os.Args[0])
			cmd.Env = append(os.Environ(), serviceEnv+"=1")
			cmd.Stderr = os.Stderr
			return cmd
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	modes := map[Mode]ModeResult{}
	for _, m := range res.Modes {
		modes[m.Mode] = m
		t.Logf("%s: %d completed, %d failed, %d provider 429s, %.1fs, utilization %.0f%%",
			m.Mode, m.Completed, m.Failed, m.Provider429, m.JobSeconds, 100*m.Utilization)
	}
	calls := sc.Services * sc.Tasks * sc.CallsPerTask
	if none := modes[ModeNone]; none.Provider429 == 0 {
		t.Errorf("mode none got no 429 (the scenario no longer overloads the key): %+v", none)
	}
	q := modes[ModeQuotad]
	if q.Provider429 != 0 {
		t.Errorf("mode quotad got %d provider 429s, want 0", q.Provider429)
	}
	if q.Calls != calls || q.Completed != calls || q.Failed != 0 {
		t.Errorf("mode quotad: %d calls, %d completed, %d failed; want all %d completed (errors %v)",
			q.Calls, q.Completed, q.Failed, calls, q.Errors)
	}
}
