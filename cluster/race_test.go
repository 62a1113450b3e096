//go:build race

package cluster

// raceEnabled: the race detector slows the single-threaded simulations tenfold
// without finding anything in them, so they run fewer seeds under it (`make test`
// also runs them in full without it).
const raceEnabled = true
