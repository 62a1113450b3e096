// Package cluster holds what several quotad nodes need to act as one: the node
// registry in etcd (registry.go, discovery.go), gossip membership with fast failure
// detection (membership.go), rendezvous ownership of pools (rendezvous.go),
// forwarding of calls to a pool's owner (forward.go), and replication of pool
// state to each pool's heir (replicate.go). The engine's side of a takeover is
// limiter.Pool.TakeOver.
//
// These parts are tested on their own; `quotad serve` does not use the gossip,
// forwarding and replication parts yet, because the fence that keeps two nodes
// from granting for one pool at once is still to be built on them.
package cluster
