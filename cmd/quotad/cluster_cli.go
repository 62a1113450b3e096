package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

const clusterUsage = `Usage: quotad cluster COMMAND [--addr host:port]

Commands:
  status        the node's view: members of record, those it hears, those it
                vouches for, and how many pools it owns
  remove ID     take a member (its gossip address) out of the record for good,
                so that majorities count without it; the removal spreads to
                every node

Flags:
`

// clusterCommand runs `quotad cluster args...`: 0 done, 1 failed, 2 misused.
func clusterCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("quotad cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:7070", "gRPC address of a quotad node")
	fs.Usage = func() { fmt.Fprint(stderr, clusterUsage); fs.PrintDefaults() }
	if len(args) == 0 {
		fs.Usage()
		return 2
	}
	cmd := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintf(stderr, "quotad cluster: %v\n", err)
		return 1
	}
	defer conn.Close()
	api := quotadv1.NewPeerServiceClient(conn)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch {
	case cmd == "status" && fs.NArg() == 0:
		st, err := api.GetCluster(ctx, &quotadv1.GetClusterRequest{})
		if err != nil {
			fmt.Fprintf(stderr, "quotad cluster status: %s: %v\n", *addr, err)
			return 1
		}
		fmt.Fprintf(stdout, "node:      %s\nrecord:    %s\nhears:     %s\nvouches:   %s\nowns:      %d pools\n",
			st.GetId(), strings.Join(st.GetRecord(), " "), strings.Join(st.GetLatest(), " "),
			strings.Join(st.GetCertified(), " "), st.GetOwnedPools())
		return 0
	case cmd == "remove" && fs.NArg() == 1:
		if _, err := api.RemoveMember(ctx, &quotadv1.RemoveMemberRequest{Id: fs.Arg(0)}); err != nil {
			fmt.Fprintf(stderr, "quotad cluster remove: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "removed %s from the record\n", fs.Arg(0))
		return 0
	}
	fs.Usage()
	return 2
}
