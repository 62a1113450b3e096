// Package config defines the pool schema shared by the configuration file, etcd
// and the CLI, validates it, resolves it into the decision engine's
// limiter.Config, and delivers it from a Source.
//
// # Schema
//
// One pool is a mapping (YAML, or JSON for etcd values):
//
//	name: openai/prod/gpt-4o-mini  # required; <= 256 bytes, printable, no whitespace
//	provider: openai               # openai | azure | anthropic | generic (default generic)
//	headroom: 0.95                 # (0, 1], default 1: scales every amount and burst
//	limits:                        # at least one limit, or a concurrent cap
//	  - resource: requests         # requests | tokens | input_tokens | output_tokens
//	    amount: 500                # 1 .. 1e15 per period
//	    per: minute                # second | minute | hour | day, or a Go duration (1ms .. 744h)
//	    burst: 500                 # bucket capacity, 1 .. 1e15; default amount
//	    initial: empty             # empty | full | a fraction in [0, 1];
//	                               # default empty for periods <= 1m, full for longer
//	concurrent: 64                 # calls in flight, 0 .. 100000; default 0 = no cap
//	lease_ttl: 60s                 # 1s .. 1h, default 60s
//	tombstone_ttl: 1h              # 1s .. 168h, default 1h
//	max_waiters: 10000             # 1 .. 1000000, default 10000
//	max_queue_wait: 5m             # refuse calls predicted to wait longer; default 0 = no bound
//	shadow: false                  # grant at once, record the wait that would have applied
//	tenants:                       # at most 1024; unlisted tenants weigh 1
//	  web: {weight: 3}             # weight 1 .. 1000000, default 1
//	max_output_tokens: 1024        # output reserved when a prompt comes without max_tokens; 0 .. 1e15
//	chars_per_token: 4             # estimate for models with no known encoding; 0.5 .. 100
//	count_cache_reads: false       # Anthropic cache reads count toward input
//	quota_exhausted_for: 10m       # fail fast this long after a spent quota; 0 .. 168h
//
// A file holds a list of pools under the top-level key pools; the only other
// top-level key allowed is server, which belongs to the daemon and is ignored
// here. An etcd value (or `quotad pools set -f`) holds one pool mapping, whose name
// may be left out and taken from the key.
//
// Decoding is strict: unknown or repeated keys, a wrong type, or an integer
// written with a fraction are errors. Durations are Go duration strings ("90s",
// "1h30m"), never bare numbers. YAML anchors and aliases are resolved; merge keys
// (<<) are not supported. A single pool value is at most MaxPoolSize bytes and a
// file at most MaxFileSize bytes.
//
// # Errors
//
// Every problem is reported as a *FieldError naming the pool, the field path and
// the offending value, for example
//
//	pool "openai/prod": limits[1].amount: -5 must be positive
//
// Validation reports every problem it finds, joined with errors.Join.
//
// # Resolution
//
// Pool.Limiter applies defaults and headroom: the effective amount is
// floor(amount*headroom) and the capacity floor(burst*headroom), each at least 1;
// headroom is applied exactly to its first nine decimal places.
package config
