package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ListNodes returns the nodes registered under prefix (DefaultNodesPrefix when
// empty), sorted by ID, and the etcd revision of the list. A key whose value is
// not a Node is skipped.
func ListNodes(ctx context.Context, cli *clientv3.Client, prefix string) ([]Registered, int64, error) {
	prefix = cmp.Or(prefix, DefaultNodesPrefix)
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("list nodes under %s: %w", prefix, err)
	}
	nodes := make(map[string]Registered, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if n, ok := decodeNode(prefix, kv); ok {
			nodes[n.ID] = n
		}
	}
	return sortedNodes(nodes), resp.Header.Revision, nil
}

// WatchNodes delivers the nodes registered under prefix (DefaultNodesPrefix when
// empty), sorted by ID: first the current list, then the whole list again after
// every change. Delivery is latest-wins: a list the receiver has not taken yet is
// replaced by a newer one. It lists, then watches from the next revision; after a
// compaction or an error it lists again, retrying every retry (default 1s) while
// etcd is unreachable. The channel is closed when ctx ends.
func WatchNodes(ctx context.Context, cli *clientv3.Client, prefix string, retry time.Duration) <-chan []Registered {
	prefix = cmp.Or(prefix, DefaultNodesPrefix)
	retry = cmp.Or(retry, time.Second)
	ch := make(chan []Registered, 1)
	publish := func(nodes map[string]Registered) {
		select {
		case <-ch:
		default:
		}
		ch <- sortedNodes(nodes)
	}
	go func() {
		defer close(ch)
		for ctx.Err() == nil {
			watchNodes(ctx, cli, prefix, publish)
			select {
			case <-ctx.Done():
			case <-time.After(retry):
			}
		}
	}()
	return ch
}

// watchNodes lists and watches once, until the watch fails or ctx ends.
func watchNodes(ctx context.Context, cli *clientv3.Client, prefix string, publish func(map[string]Registered)) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	list, rev, err := ListNodes(lctx, cli, prefix)
	cancel()
	if err != nil {
		return
	}
	nodes := make(map[string]Registered, len(list))
	for _, n := range list {
		nodes[n.ID] = n
	}
	publish(maps.Clone(nodes))
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if resp.Err() != nil {
			return
		}
		for _, ev := range resp.Events {
			id := strings.TrimPrefix(string(ev.Kv.Key), prefix)
			delete(nodes, id)
			if ev.Type == mvccpb.PUT {
				if n, ok := decodeNode(prefix, ev.Kv); ok {
					nodes[n.ID] = n
				}
			}
		}
		if len(resp.Events) > 0 {
			publish(maps.Clone(nodes))
		}
	}
}

// decodeNode decodes a registration; the key decides the ID.
func decodeNode(prefix string, kv *mvccpb.KeyValue) (Registered, bool) {
	var n Registered
	if err := json.Unmarshal(kv.Value, &n); err != nil {
		return Registered{}, false
	}
	n.ID = strings.TrimPrefix(string(kv.Key), prefix)
	return n, n.ID != ""
}

func sortedNodes(m map[string]Registered) []Registered {
	out := slices.Collect(maps.Values(m))
	slices.SortFunc(out, func(a, b Registered) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
