package server

import (
	"strings"
	"sync"

	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quotad/quotad/limiter"
)

// Metrics are one server's Prometheus metrics, registered on its own registry (no
// package-global metrics). Per-tenant series are capped: tenants beyond the cap
// are counted under the tenant label "_other".
type Metrics struct {
	Registry *prometheus.Registry

	grants        *prometheus.CounterVec
	tenantGrants  *prometheus.CounterVec
	refusals      *prometheus.CounterVec
	wait          *prometheus.HistogramVec
	reports       *prometheus.CounterVec
	providerLimit *prometheus.CounterVec
	estimateRatio *prometheus.HistogramVec
	configRejects *prometheus.CounterVec
	configUp      *prometheus.GaugeVec

	tenantCap int
	mu        sync.RWMutex // guards series
	series    map[seriesKey]grantSeries
	tenants   int // (pool, tenant) pairs with labels of their own
}

// seriesKey names the grant series of one (pool, tenant) pair.
type seriesKey struct{ pool, tenant string }

// grantSeries are the metrics a grant updates, resolved once per (pool, tenant)
// so the hot path does no label lookups.
type grantSeries struct {
	grants, tenantGrants prometheus.Counter
	wait                 prometheus.Observer
}

// otherTenant is the label of tenants past the cap.
const otherTenant = "_other"

// NewMetrics registers quotad's metrics on a new registry. The pool collector reads
// queue depth, levels and leases from lim at scrape time.
func NewMetrics(lim *limiter.Limiter, tenantCap int) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		grants: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quotad_grants_total", Help: "Grants made, by pool.",
		}, []string{"pool"}),
		tenantGrants: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quotad_tenant_grants_total", Help: "Grants made, by pool and tenant (tenants past the cap count as _other).",
		}, []string{"pool", "tenant"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quotad_refusals_total", Help: "Acquires not granted, by pool and reason.",
		}, []string{"pool", "reason"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "quotad_wait_seconds", Help: "Time granted calls waited in the queue.",
			Buckets: []float64{0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"pool"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quotad_reports_total", Help: "Reports, by pool, outcome and settlement.",
		}, []string{"pool", "outcome", "settlement"}),
		providerLimit: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quotad_provider_rate_limited_total", Help: "Provider 429s reported, by pool.",
		}, []string{"pool"}),
		estimateRatio: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "quotad_estimate_ratio", Help: "Settled tokens divided by estimated tokens, per reported grant.",
			Buckets: []float64{0.1, 0.25, 0.5, 0.75, 0.9, 1, 1.1, 1.5, 2, 4},
		}, []string{"pool"}),
		configRejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quotad_config_rejected_total", Help: "Configuration updates refused, by source.",
		}, []string{"source"}),
		configUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "quotad_config_source_connected", Help: "1 while the config source reaches its store (etcd), 0 while the node serves its last good configuration without it.",
		}, []string{"source"}),
		tenantCap: tenantCap,
		series:    make(map[seriesKey]grantSeries),
	}
	m.Registry.MustRegister(m.grants, m.tenantGrants, m.refusals, m.wait, m.reports, m.providerLimit,
		m.estimateRatio, m.configRejects, m.configUp, newPoolCollector(lim))
	return m
}

// grantSeriesFor returns the series of (pool, tenant), creating them on first use;
// tenants past the cap share the tenant label otherTenant.
func (m *Metrics) grantSeriesFor(pool, tenant string) grantSeries {
	key := seriesKey{pool, tenant}
	m.mu.RLock()
	s, ok := m.series[key]
	m.mu.RUnlock()
	if ok {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.series[key]; ok {
		return s
	}
	label := tenant
	if m.tenants >= m.tenantCap {
		label = otherTenant
	} else {
		m.tenants++
	}
	s = grantSeries{
		grants:       m.grants.WithLabelValues(pool),
		tenantGrants: m.tenantGrants.WithLabelValues(pool, label),
		wait:         m.wait.WithLabelValues(pool),
	}
	if label == tenant {
		m.series[key] = s // tenants past the cap are looked up each time: no growth
	}
	return s
}

func (m *Metrics) granted(pool, tenant string, g limiter.Grant) {
	s := m.grantSeriesFor(pool, tenant)
	s.grants.Inc()
	s.tenantGrants.Inc()
	s.wait.Observe(g.Waited.Seconds())
}

// Labels of refusals beyond the error reasons (see reasonLabel).
var (
	// unknownPool is the pool label of requests that name no pool of this node
	// (or are invalid), so that bogus names cannot grow the metrics.
	unknownPool = "_unknown"
	// reasonInvalid labels requests that fail validation.
	reasonInvalid = strings.ToLower(quotadv1.ErrorReason_INVALID_REQUEST.String())
	// reasonMaxWait labels Acquires refused by their wait budget: an answer,
	// not an error.
	reasonMaxWait = "max_wait"
)

// refused counts a refusal in pool (a configured pool's name, or unknownPool).
func (m *Metrics) refused(pool, reason string) {
	m.refusals.WithLabelValues(pool, reason).Inc()
}

// ConfigRejected counts a refused configuration update from source.
func (m *Metrics) ConfigRejected(source string) { m.configRejects.WithLabelValues(source).Inc() }

// ConfigSourceConnected records whether source reaches its store. A source that
// never reports (the file) has no series.
func (m *Metrics) ConfigSourceConnected(source string, connected bool) {
	v := 0.0
	if connected {
		v = 1
	}
	m.configUp.WithLabelValues(source).Set(v)
}

// poolCollector exports each pool's live state at scrape time.
type poolCollector struct {
	lim                                              *limiter.Limiter
	waiters, inFlight, level, debt, capacity, paused *prometheus.Desc
	shadowWait, unreported                           *prometheus.Desc
}

func newPoolCollector(lim *limiter.Limiter) *poolCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append([]string{"pool"}, labels...), nil)
	}
	return &poolCollector{
		lim:        lim,
		waiters:    d("quotad_queue_depth", "Calls waiting in the pool's queue."),
		inFlight:   d("quotad_in_flight", "Open leases (calls in flight)."),
		level:      d("quotad_bucket_level", "What the bucket holds (negative in debt).", "resource", "period"),
		debt:       d("quotad_bucket_debt", "How far below zero the bucket is.", "resource", "period"),
		capacity:   d("quotad_bucket_capacity", "The bucket's capacity.", "resource", "period"),
		paused:     d("quotad_paused_seconds", "Time left in a pause imposed by a provider 429."),
		shadowWait: d("quotad_shadow_wait_seconds_total", "Wait shadow mode would have imposed."),
		unreported: d("quotad_unreported_leases_total", "Leases that ran out without a Report (their estimates stood)."),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.waiters, c.inFlight, c.level, c.debt, c.capacity, c.paused, c.shadowWait, c.unreported} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, name := range c.lim.Pools() {
		s, err := c.lim.Status(name)
		if err != nil {
			continue // removed since Pools was read
		}
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{name}, labels...)...)
		}
		gauge(c.waiters, float64(s.Waiters))
		gauge(c.inFlight, float64(s.InFlight))
		gauge(c.paused, s.PausedFor.Seconds())
		ch <- prometheus.MustNewConstMetric(c.shadowWait, prometheus.CounterValue, s.ShadowWaitTotal.Seconds(), name)
		ch <- prometheus.MustNewConstMetric(c.unreported, prometheus.CounterValue, float64(s.UnreportedLeases), name)
		for _, l := range s.Limits {
			resource, period := l.Resource.String(), l.Period.String()
			gauge(c.level, float64(l.Level), resource, period)
			gauge(c.debt, float64(l.Debt), resource, period)
			gauge(c.capacity, float64(l.Capacity), resource, period)
		}
	}
}
