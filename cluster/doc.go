// Package cluster makes several quotad nodes act as one:
//
//   - quorum.go: the fence. Heartbeats certify pool ownership for a short time;
//     a node grants for a pool only while a majority certifies it, so at most one
//     node grants for a pool at any moment, whatever the network does.
//   - node.go: one node's membership. It carries the heartbeats over gossip
//     (membership.go, hashicorp/memberlist), reconciles the engine with the fence
//     (ownership.go: hand off, take over, renew), and serves PeerService.
//   - rendezvous.go: who owns a pool, and who is its heir, among the members.
//   - forward.go: calls for a pool this node does not own go to its owner.
//   - replicate.go: owners send changed pool states to heirs; heirs keep them
//     for a takeover, and keep handoffs.
//   - registry.go, discovery.go: the node registry in etcd, the members of
//     record when etcd is configured.
//
// The engine's side of a takeover is limiter.Pool.TakeOver.
package cluster
