package cluster

import "sort"

// Rendezvous (highest random weight) hashing: every node ranks the members for a
// pool by a hash of (member, pool) and the first is the owner. Every node that
// knows the same members computes the same ranking, a member's departure moves only
// the pools it owned, and the second in rank is the natural heir: the owner
// replicates a pool's state to it.

// Rank returns members ordered by their weight for pool, the owner first. members
// are node names; the result is a new slice.
func Rank(pool string, members []string) []string {
	ranked := append([]string(nil), members...)
	ph := fnv64(pool)
	sort.Slice(ranked, func(i, j int) bool {
		wi, wj := weight(ph, ranked[i]), weight(ph, ranked[j])
		if wi != wj {
			return wi > wj
		}
		return ranked[i] < ranked[j]
	})
	return ranked
}

// Owner returns the member that owns pool, or "" when there are no members.
func Owner(pool string, members []string) string {
	ph := fnv64(pool)
	best, bestW := "", uint64(0)
	for _, m := range members {
		w := weight(ph, m)
		if best == "" || w > bestW || w == bestW && m < best {
			best, bestW = m, w
		}
	}
	return best
}

// weight mixes a pool's hash with a member's, so that members' weights for one
// pool are independent.
func weight(poolHash uint64, member string) uint64 {
	return mix64(poolHash ^ mix64(fnv64(member)))
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix64 is splitmix64's finalizer: it spreads FNV's weak low bits.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
