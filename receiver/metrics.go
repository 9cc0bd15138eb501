package receiver

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/promreg"
	"github.com/zmyorg/zmy-responder/remediate"
)

// webhookCodes are the answers POST /webhook gives; their series exist from the start.
var webhookCodes = []int{200, 400, 401, 413, 500, 503}

// maxAlertnames bounds the alertname label of alerts_received_total: the alertnames come from
// the payload, and a misrouted Alertmanager must not be able to grow the series without limit.
const maxAlertnames = 50

type metrics struct {
	webhookRequests *prometheus.CounterVec
	alertsReceived  *prometheus.CounterVec
	unknownCluster  prometheus.Counter
	// unknownIncidents is incidents_total{cluster="",outcome="unknown_cluster"}: the receiver
	// closes those incidents at ingest; the engine counts the others into the same counter.
	unknownIncidents prometheus.Counter
	truncated        prometheus.Counter
	// alertsDropped counts alerts not stored because their incident held its cap, by cluster
	// ("" for clusters missing from the configuration: their names are the payload's).
	alertsDropped *prometheus.CounterVec
	inFlight      prometheus.Gauge
	open          *openIncidents

	mu         sync.Mutex
	alertnames map[string]bool
}

func newMetrics(reg prometheus.Registerer, j Journal) (*metrics, error) {
	m := &metrics{
		webhookRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "zmy_responder", Name: "webhook_requests_total",
			Help: "Webhook requests by HTTP status code answered.",
		}, []string{"code"}),
		alertsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "zmy_responder", Name: "alerts_received_total",
			Help: "Alerts journaled from webhook notifications, duplicates included.",
		}, []string{"alertname", "status"}),
		unknownCluster: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "zmy_responder", Name: "unknown_cluster_alerts_total",
			Help: "Alerts for a cluster missing from the configuration: journaled, answered 200, not acted on.",
		}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "zmy_responder", Name: "webhook_truncated_alerts_total",
			Help: "Alerts Alertmanager left out of notifications (truncatedAlerts, max_alerts).",
		}),
		alertsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "zmy_responder", Name: "incident_alerts_dropped_total",
			Help: "Alert deliveries answered 200 but not stored: their incident already held webhook.max_alerts_per_incident distinct alerts (max_alerts_per_unknown_cluster for cluster=\"\", a cluster missing from the configuration).",
		}, []string{"cluster"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "zmy_responder", Name: "http_requests_in_flight",
			Help: "HTTP requests being served; shutdown waits for them.",
		}),
		alertnames: map[string]bool{},
	}
	for _, c := range webhookCodes {
		m.webhookRequests.WithLabelValues(strconv.Itoa(c))
	}
	m.alertLabel("ZMY_Quorum_Down")
	for _, s := range []model.AlertStatus{model.AlertFiring, model.AlertResolved} {
		m.alertsReceived.WithLabelValues("ZMY_Quorum_Down", string(s))
	}
	m.alertsDropped.WithLabelValues("")
	cs := []prometheus.Collector{m.webhookRequests, m.alertsReceived, m.unknownCluster, m.truncated, m.alertsDropped, m.inFlight}
	if j != nil {
		m.open = &openIncidents{j: j}
		cs = append(cs, m.open)
	}
	incidents := remediate.NewIncidentsCounter()
	if reg != nil {
		for _, c := range cs {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
		var err error
		if incidents, err = promreg.Register(reg, incidents); err != nil {
			return nil, err
		}
	}
	m.unknownIncidents = incidents.WithLabelValues("", string(incident.OutcomeUnknownCluster))
	return m, nil
}

// setClusters makes cfg's clusters the ones incidents_open and incident_alerts_dropped_total
// report at zero.
func (m *metrics) setClusters(cfg *config.Config) {
	for _, c := range cfg.Clusters {
		m.alertsDropped.WithLabelValues(c.Name)
	}
	if m.open == nil {
		return
	}
	names := make([]string, 0, len(cfg.Clusters))
	for _, c := range cfg.Clusters {
		names = append(names, c.Name)
	}
	m.open.clusters.Store(&names)
}

// openIncidents is incidents_open{cluster}, read from the journal at scrape time: every
// configured cluster (0 when it has none open) and any other cluster with an open incident.
type openIncidents struct {
	j        Journal
	clusters atomic.Pointer[[]string]
}

var descOpen = prometheus.NewDesc("zmy_responder_incidents_open",
	"Incidents not yet closed, by cluster, read from the journal.", []string{"cluster"}, nil)

func (o *openIncidents) Describe(ch chan<- *prometheus.Desc) { ch <- descOpen }

// openScrapeTimeout bounds the journal read of one scrape. Collect has no context of its own.
const openScrapeTimeout = 5 * time.Second

func (o *openIncidents) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), openScrapeTimeout)
	defer cancel()
	counts := map[string]int{}
	if names := o.clusters.Load(); names != nil {
		for _, n := range *names {
			counts[n] = 0
		}
	}
	// Summaries, a page at a time: a scrape needs the cluster of each open incident, not its
	// alerts (up to webhook.max_alerts_per_incident each), which List would load and decode.
	q := incident.PageQuery{State: incident.StateOpen, Limit: incident.MaxPageLimit}
	for {
		page, err := o.j.Page(ctx, q)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(descOpen, fmt.Errorf("list open incidents: %w", err))
			return
		}
		for _, s := range page.Incidents {
			counts[s.Cluster]++
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	for c, n := range counts {
		ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(n), c)
	}
}

// alertLabel is the alertname label value to use: the name itself for the first maxAlertnames
// names seen, "other" afterwards.
func (m *metrics) alertLabel(name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.alertnames[name] {
		return name
	}
	if len(m.alertnames) >= maxAlertnames {
		return "other"
	}
	m.alertnames[name] = true
	return name
}
