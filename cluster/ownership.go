package cluster

// ownAction is what a node does with one pool when it reconciles its engine with
// the fence.
type ownAction int

const (
	keepPool ownAction = iota // nothing to do, or renew the lease of an owned pool
	handOff                   // owned, no longer this node's: stop, send the final state
	takeOver                  // this node's now: start from the best state it has
	retake                    // owned, but its lease ran out before this renewal: another
	// node may have served the pool meanwhile, so start again as a takeover
)

// decide chooses the action for a pool: owned and leaseUntil are what the engine
// holds, owns and until what the fence says now.
func decide(owned bool, leaseUntil int64, owns bool, until, now int64) ownAction {
	switch {
	case owned && !owns:
		return handOff
	case owned && until > now && leaseUntil <= now:
		return retake
	case !owned && owns && until > now:
		return takeOver
	}
	return keepPool
}
