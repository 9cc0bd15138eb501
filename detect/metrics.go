package detect

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/promreg"
)

const namespace = "zmy_responder"

// metrics are detect's series. Label values are pre-created so every series exists at zero.
type metrics struct {
	probeDuration *prometheus.HistogramVec
	probeResults  *prometheus.CounterVec
	verdicts      *prometheus.CounterVec
	threshold     *prometheus.GaugeVec
	clockOffset   *prometheus.GaugeVec
	fuseTripped   *prometheus.GaugeVec
	partition     *partitionScores
}

func newMetrics(reg prometheus.Registerer, now func() time.Time) *metrics {
	m := &metrics{
		probeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "probe_duration_seconds",
			Help:    "Duration of one probe of one node (or of the cluster's etcd/redis), by probe.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"probe"}),
		probeResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "probe_results_total",
			Help: "Probe results by probe and result (ok, fail, error, skipped).",
		}, []string{"probe", "result"}),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "verdicts_total",
			Help: "Split-brain confirmations by verdict.",
		}, []string{"verdict"}),
		threshold: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "split_brain_threshold_seconds",
			Help: "Dynamic split-brain threshold: max(min, rtt_factor × P99 heartbeat RTT + median sync lag); the probe budget.",
		}, []string{"cluster"}),
		clockOffset: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "clock_offset_seconds",
			Help: "Last measured node clock offset (node clock − responder midpoint of the scrape).",
		}, []string{"cluster", "node"}),
		fuseTripped: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "clock_fuse_tripped",
			Help: "1 while the cluster's clock fuse is tripped (verdicts are inconclusive).",
		}, []string{"cluster"}),
		partition: newPartitionScores(now),
	}
	if reg != nil {
		m.probeDuration = register(reg, m.probeDuration)
		m.probeResults = register(reg, m.probeResults)
		m.verdicts = register(reg, m.verdicts)
		m.threshold = register(reg, m.threshold)
		m.clockOffset = register(reg, m.clockOffset)
		m.fuseTripped = register(reg, m.fuseTripped)
		m.partition = register(reg, m.partition)
	}
	for _, p := range ProbeNames {
		m.probeDuration.WithLabelValues(p)
		for _, s := range Statuses {
			m.probeResults.WithLabelValues(p, string(s))
		}
	}
	for _, v := range []incident.VerdictKind{incident.VerdictConfirmed, incident.VerdictNotConfirmed, incident.VerdictInconclusive} {
		m.verdicts.WithLabelValues(string(v))
	}
	return m
}

// register registers c, or reuses the identical collector registered by an earlier Prober on the
// same registry (tests and reloads build several). Any other registration error is a programming
// error and panics, as MustRegister would.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	c, err := promreg.Register(reg, c)
	if err != nil {
		panic(err)
	}
	return c
}

// setClusters pre-creates the per-cluster series of cfg and deletes those of clusters and nodes
// no longer configured, so a removed node stops exporting a stale offset.
func (m *metrics) setClusters(old, cfg *config.Config) {
	m.partition.setClusters(cfg)
	for _, c := range cfg.Clusters {
		m.threshold.WithLabelValues(c.Name)
		m.fuseTripped.WithLabelValues(c.Name)
		for _, n := range c.Nodes {
			m.clockOffset.WithLabelValues(c.Name, n.ID)
		}
	}
	if old == nil {
		return
	}
	for _, c := range old.Clusters {
		nc := cfg.Cluster(c.Name)
		if nc == nil {
			m.threshold.DeleteLabelValues(c.Name)
			m.fuseTripped.DeleteLabelValues(c.Name)
			m.clockOffset.DeletePartialMatch(prometheus.Labels{"cluster": c.Name})
			continue
		}
		for _, n := range c.Nodes {
			if !hasNode(nc, n.ID) {
				m.clockOffset.DeleteLabelValues(c.Name, n.ID)
			}
		}
	}
}

func hasNode(c *config.ClusterConfig, id string) bool {
	for _, n := range c.Nodes {
		if n.ID == id {
			return true
		}
	}
	return false
}

// observe counts one probe result.
func (m *metrics) observe(r Result) {
	m.probeResults.WithLabelValues(r.Probe, string(r.Status)).Inc()
	if r.Status != StatusSkipped {
		m.probeDuration.WithLabelValues(r.Probe).Observe(r.Duration.Seconds())
	}
}
