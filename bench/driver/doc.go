// Package driver runs quotad's load and accuracy benchmark: a fleet of service
// processes sharing one provider key of the simulator (bench/providersim), once
// per mode, with the same workload and the same simulator settings:
//
//   - ModeNone: no limiter. Every task sends its calls back to back and retries
//     a 429 the way the OpenAI SDKs do by default (see SDKRetry); a call still
//     refused after the last retry has failed.
//   - ModeSemaphore: the usual advice. A per-process semaphore bounds the calls
//     in flight (held across retries, as `async with sem:` around an SDK call
//     does), with the same SDK retries.
//   - ModeQuotad: every attempt Acquires its estimated cost from one quotad node
//     through the Go client (tenant: the service's name), calls, and Reports the
//     usage from the response body (or the 429 with its retry-after).
//
// A service process is the benchmark binary itself (see ServeService): the
// parent writes it a ServiceSpec, waits until every service is ready, starts
// them together, and collects their per-call Records. The parent then reads
// the simulator's stats and computes a ModeResult: provider 429s, calls
// completed and failed, utilization of the limits in steady state, job
// completion time, the wait from "want to call" to "called", fairness between
// services, and quotad's latency and CPU.
//
// RunThroughput measures a quotad node's Acquire+Report rate beside a bare
// gRPC health-check rate against the same process.
//
// The cluster scenarios run quotad as a cluster of processes on loopback (see
// quotadCluster): RunClusterLoad is gubernator's accuracy load (workers on every
// node Acquiring 1 request and Reporting at once, flat out), optionally with the
// pool's owner killed or stopped during it, checked against a reference token
// bucket; RunClusterForward compares calls sent to the pool's owner, to a node
// that forwards them, and to a node on its own. Scenario.QuotadNodes runs a
// fleet's quotad mode against a cluster.
package driver
