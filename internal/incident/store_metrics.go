package incident

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zmyorg/zmy-responder/internal/promreg"
)

// Store operations: the op label of zmy_responder_storage_request_duration_seconds.
const (
	opIngest      = "ingest"
	opGet         = "get"
	opList        = "list"
	opUpdate      = "update"
	opGetState    = "get_state"
	opUpdateState = "update_state"
	opPrune       = "prune" // one batch of Prune
)

var storeOps = []string{opIngest, opGet, opList, opUpdate, opGetState, opUpdateState, opPrune}

// storeMetrics are the metrics every store backend exports, under the same names, so that
// dashboards and alerts read the same series whichever backend runs.
type storeMetrics struct {
	write   prometheus.Histogram
	request *prometheus.HistogramVec
}

func newStoreMetrics(reg prometheus.Registerer) (*storeMetrics, error) {
	m := &storeMetrics{
		write: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "zmy_responder",
			Name:      "journal_write_duration_seconds",
			Help:      "Time from a journal write call (ingest, update, state update) to its data being durable: fsynced (bbolt) or committed by etcd, group-commit wait and conflict retries included.",
			Buckets:   []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5},
		}),
		request: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "zmy_responder",
			Name:      "storage_request_duration_seconds",
			Help:      "Time of one call to the incident store by operation, failures included.",
			Buckets:   []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"op"}),
	}
	for _, op := range storeOps {
		m.request.WithLabelValues(op)
	}
	if reg != nil {
		// A store reopened in the same process (tests, restarts in place) keeps the series.
		var err error
		if m.write, err = promreg.Register(reg, m.write); err != nil {
			return nil, err
		}
		if m.request, err = promreg.Register(reg, m.request); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe records one call of op that started at start.
func (m *storeMetrics) observe(op string, start time.Time) {
	m.request.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

// observeWrite records one write call: a request and a journal write.
func (m *storeMetrics) observeWrite(op string, start time.Time) {
	d := time.Since(start).Seconds()
	m.request.WithLabelValues(op).Observe(d)
	m.write.Observe(d)
}
