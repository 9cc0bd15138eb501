package remediate

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/promreg"
)

type metrics struct {
	incidents     *prometheus.CounterVec
	step          *prometheus.GaugeVec
	stepDuration  *prometheus.HistogramVec
	steps         *prometheus.CounterVec
	stepDeadline  *prometheus.GaugeVec
	containment   *prometheus.HistogramVec
	breakerState  *prometheus.GaugeVec
	clusterPaused *prometheus.GaugeVec
	silences      *prometheus.CounterVec
	acks          *prometheus.CounterVec
	knownClusters map[string]bool
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns = "zmy_responder"
	m := &metrics{
		incidents: NewIncidentsCounter(),
		step: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "incident_step",
			Help: "1 for the current step of the cluster's open incident, else 0."}, []string{"cluster", "step"}),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "step_duration_seconds",
			Help:    "Time spent in one runbook step (one attempt).",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800}}, []string{"step"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "steps_total",
			Help: "Runbook step attempts, by step and result (ok, error, timeout, skipped)."}, []string{"step", "result"}),
		stepDeadline: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "step_deadline_timestamp_seconds",
			Help: "Deadline of the current step of the cluster's open incident, unix seconds; 0 when idle."}, []string{"cluster"}),
		containment: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "time_to_containment_seconds",
			Help:    "From the first alert received to every node verified suspended, by cluster.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 5, 10, 20, 30, 60, 120}}, []string{"cluster"}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "breaker_state",
			Help: "Remediation circuit breaker per cluster: 1 for its current state (closed, half-open, open), 0 for the others."},
			[]string{"cluster", "state"}),
		clusterPaused: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "cluster_paused",
			Help: "1 when remediation of the cluster is paused (kill switch)."}, []string{"cluster"}),
		silences: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "silences_total",
			Help: "Alertmanager silence actions (created, extended, expired, human_expired, failed, foreign)."}, []string{"action"}),
		acks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "acknowledgements_total",
			Help: "Acknowledgements of incidents by humans (source: silence, api); they approve nothing."}, []string{"source"}),
		knownClusters: map[string]bool{},
	}
	if reg != nil {
		var err error
		if m.incidents, err = register(reg, m.incidents); err != nil {
			return nil, err
		}
		if m.step, err = register(reg, m.step); err != nil {
			return nil, err
		}
		if m.stepDuration, err = register(reg, m.stepDuration); err != nil {
			return nil, err
		}
		if m.steps, err = register(reg, m.steps); err != nil {
			return nil, err
		}
		if m.stepDeadline, err = register(reg, m.stepDeadline); err != nil {
			return nil, err
		}
		if m.containment, err = register(reg, m.containment); err != nil {
			return nil, err
		}
		if m.breakerState, err = register(reg, m.breakerState); err != nil {
			return nil, err
		}
		if m.clusterPaused, err = register(reg, m.clusterPaused); err != nil {
			return nil, err
		}
		if m.silences, err = register(reg, m.silences); err != nil {
			return nil, err
		}
		if m.acks, err = register(reg, m.acks); err != nil {
			return nil, err
		}
	}
	for _, s := range stepNames() {
		m.stepDuration.WithLabelValues(string(s))
		for _, r := range statuses {
			m.steps.WithLabelValues(string(s), string(r))
		}
	}
	for _, s := range ackSources {
		m.acks.WithLabelValues(s)
	}
	for _, a := range silenceActions {
		m.silences.WithLabelValues(a)
	}
	return m, nil
}

// addClusters pre-creates the per-cluster series of newly configured clusters. Callers hold
// Engine.mu.
func (m *metrics) addClusters(cfg *config.Config) {
	for _, c := range cfg.Clusters {
		if m.knownClusters[c.Name] {
			continue
		}
		m.knownClusters[c.Name] = true
		for _, s := range stepNames() {
			m.step.WithLabelValues(c.Name, string(s))
		}
		m.stepDeadline.WithLabelValues(c.Name)
		m.setBreaker(c.Name, BreakerClosed)
		m.clusterPaused.WithLabelValues(c.Name)
		m.containment.WithLabelValues(c.Name)
		for _, o := range runbookOutcomes() {
			m.incidents.WithLabelValues(c.Name, string(o))
		}
	}
}

// runbookOutcomes are the outcomes the engine closes incidents with: every outcome but
// unknown_cluster, which the receiver gives at ingest to an alert of a cluster the engine does
// not know.
func runbookOutcomes() []incident.Outcome {
	out := make([]incident.Outcome, 0, len(incident.Outcomes))
	for _, o := range incident.Outcomes {
		if o != incident.OutcomeUnknownCluster {
			out = append(out, o)
		}
	}
	return out
}

// closed counts an incident the engine closed.
func (m *metrics) closed(cluster string, o incident.Outcome) {
	m.incidents.WithLabelValues(cluster, string(o)).Inc()
}

// contained observes a cluster's time to containment.
func (m *metrics) contained(cluster string, d time.Duration) {
	m.containment.WithLabelValues(cluster).Observe(d.Seconds())
}

// setBreaker exports the cluster breaker's state the enum way: 1 on its state, 0 on the others.
func (m *metrics) setBreaker(cluster string, st BreakerState) {
	for _, s := range []BreakerState{BreakerClosed, BreakerHalfOpen, BreakerOpen} {
		v := 0.0
		if s == st {
			v = 1
		}
		m.breakerState.WithLabelValues(cluster, s.String()).Set(v)
	}
}

// NewIncidentsCounter is zmy_responder_incidents_total. Incidents are counted once, when they
// close, by cluster and outcome — as an HTTP server counts a request once it knows its code.
// The engine counts the incidents it closes; the receiver those it closes at ingest (outcome
// unknown_cluster, cluster label empty: the name is not one the responder knows, and an
// Alertmanager sending many such names must not grow the series; the journal has the name).
// Register it through promreg so both get the same collector.
func NewIncidentsCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "zmy_responder", Name: "incidents_total",
		Help: "Incidents, counted once when they close, by cluster and outcome (unknown_cluster: cluster label empty)."},
		[]string{"cluster", "outcome"})
}

// setStep marks step as the cluster's current step ("" clears them all).
func (m *metrics) setStep(cluster string, step incident.Step) {
	for _, s := range stepNames() {
		v := 0.0
		if s == step && s != incident.StepClosed {
			v = 1
		}
		m.step.WithLabelValues(cluster, string(s)).Set(v)
	}
}

// register registers c, or returns the identical collector registered before (an engine rebuilt
// on the same registry keeps counting into the same series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	c, err := promreg.Register(reg, c)
	if err != nil {
		return c, fmt.Errorf("register remediation metrics: %w", err)
	}
	return c, nil
}
