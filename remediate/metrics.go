package remediate

import (
	"fmt"

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
	containment   prometheus.Histogram
	breakerState  *prometheus.GaugeVec
	clusterPaused *prometheus.GaugeVec
	silences      *prometheus.CounterVec
	knownClusters map[string]bool
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns = "zmy_responder"
	m := &metrics{
		incidents: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "incidents_total",
			Help: "Incidents closed, by outcome."}, []string{"outcome"}),
		step: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "incident_step",
			Help: "1 for the current step of the cluster's open incident, else 0."}, []string{"cluster", "step"}),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "step_duration_seconds",
			Help:    "Time spent in one runbook step (one attempt).",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800}}, []string{"step"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "steps_total",
			Help: "Runbook step attempts, by step and result (ok, error, timeout, skipped)."}, []string{"step", "result"}),
		stepDeadline: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "step_deadline_timestamp_seconds",
			Help: "Deadline of the current step of the cluster's open incident, unix seconds; 0 when idle."}, []string{"cluster"}),
		containment: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "time_to_containment_seconds",
			Help:    "From the first alert received to every node verified suspended.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 5, 10, 20, 30, 60, 120}}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "breaker_state",
			Help: "Remediation circuit breaker per cluster: 0 closed, 1 half-open, 2 open."}, []string{"cluster"}),
		clusterPaused: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "cluster_paused",
			Help: "1 when remediation of the cluster is paused (kill switch)."}, []string{"cluster"}),
		silences: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "silences_total",
			Help: "Alertmanager silence actions (created, extended, expired, failed, foreign)."}, []string{"action"}),
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
	}
	for _, o := range incident.Outcomes {
		m.incidents.WithLabelValues(string(o))
	}
	for _, s := range stepNames() {
		m.stepDuration.WithLabelValues(string(s))
		for _, r := range statuses {
			m.steps.WithLabelValues(string(s), string(r))
		}
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
		m.breakerState.WithLabelValues(c.Name)
		m.clusterPaused.WithLabelValues(c.Name)
	}
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
