package cluster

import "github.com/prometheus/client_golang/prometheus"

// Collector exports the node's view of the cluster as gauges, read at scrape
// time: quotad_cluster_members{view} (record, heard, vouched) and
// quotad_cluster_pools_owned.
func (n *Node) Collector() prometheus.Collector { return nodeCollector{n} }

var (
	membersDesc = prometheus.NewDesc("quotad_cluster_members",
		"Members of the cluster as this node sees them: of record, heard recently, and vouched for (its certified view).",
		[]string{"view"}, nil)
	ownedDesc = prometheus.NewDesc("quotad_cluster_pools_owned",
		"Pools this node owns and serves.", nil, nil)
)

type nodeCollector struct{ n *Node }

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- membersDesc
	ch <- ownedDesc
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.n.Status()
	ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(len(st.Record)), "record")
	ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(len(st.Latest)), "heard")
	ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(len(st.Certified)), "vouched")
	ch <- prometheus.MustNewConstMetric(ownedDesc, prometheus.GaugeValue, float64(st.Owned))
}
