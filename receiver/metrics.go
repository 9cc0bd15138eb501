package receiver

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/zmyorg/zmy-responder/internal/incident"
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
	truncated       prometheus.Counter
	inFlight        prometheus.Gauge

	mu         sync.Mutex
	alertnames map[string]bool
}

func newMetrics(reg prometheus.Registerer, j *incident.Journal) (*metrics, error) {
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
	cs := []prometheus.Collector{m.webhookRequests, m.alertsReceived, m.unknownCluster, m.truncated, m.inFlight}
	if j != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "zmy_responder", Name: "incidents_open",
			Help: "Incidents not yet closed, read from the journal.",
		}, func() float64 {
			n, err := j.OpenCount()
			if err != nil {
				return -1
			}
			return float64(n)
		}))
	}
	if reg != nil {
		for _, c := range cs {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
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
