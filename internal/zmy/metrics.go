package zmy

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of the commands_total counter.
const (
	resultOK      = "ok"
	resultError   = "error"
	resultTimeout = "timeout"
)

// driverMetrics are shared by every Driver registered with the same registry: one per cluster,
// rebuilt on every reload, all counting into the same series.
type driverMetrics struct {
	commands *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newDriverMetrics(reg prometheus.Registerer) (*driverMetrics, error) {
	m := &driverMetrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "zmy_responder",
			Name:      "commands_total",
			Help:      "zmyctl commands run, by command and result (ok, error, timeout).",
		}, []string{"command", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "zmy_responder",
			Name:      "command_duration_seconds",
			Help:      "Wall time of zmyctl commands, from exec to exit or kill.",
			Buckets:   []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"command"}),
	}
	if reg != nil {
		var err error
		if m.commands, err = register(reg, m.commands); err != nil {
			return nil, err
		}
		if m.duration, err = register(reg, m.duration); err != nil {
			return nil, err
		}
	}
	for _, c := range Commands {
		for _, r := range []string{resultOK, resultError, resultTimeout} {
			m.commands.WithLabelValues(c, r)
		}
		m.duration.WithLabelValues(c)
	}
	return m, nil
}

// register registers c, or returns the identical collector a previous Driver registered.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

// observe counts one command. A call that never got as far as exec (res == nil) is not timed.
func (m *driverMetrics) observe(command string, res *Result, err error) {
	result := resultOK
	switch {
	case errors.Is(err, ErrTimeout):
		result = resultTimeout
	case err != nil:
		result = resultError
	}
	m.commands.WithLabelValues(command, result).Inc()
	if res != nil {
		m.duration.WithLabelValues(command).Observe(res.Duration.Seconds())
	}
}
