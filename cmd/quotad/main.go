// Command quotad is the quotad daemon and its command-line tools.
//
//	quotad serve [flags]     run a node
//	quotad pools COMMAND     list, get, set, delete or validate pools in etcd
//	quotad cluster COMMAND   a cluster node's view; remove a member for good
//	quotad version           print the version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `quotad: fleet-wide rate limits for LLM provider quotas

Usage:
  quotad serve [flags]   run a node (quotad serve -h lists the flags)
  quotad pools COMMAND   list, get, set, delete or validate pools in etcd (quotad pools -h)
  quotad cluster COMMAND a cluster node's view, or remove a member (quotad cluster -h)
  quotad version         print the version
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "pools":
		return poolsCommand(ctx, args[1:], stdout, stderr, os.Getenv)
	case "cluster":
		return clusterCommand(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "quotad", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "quotad: unknown command %q\n\n%s", args[0], usage)
	return 2
}
