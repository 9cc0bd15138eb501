package zmy

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zmyorg/zmy-responder/internal/promreg"
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
			Help:      "Node commands sent (zmyctl runs or admin API calls), by command and result (ok, error, timeout).",
		}, []string{"command", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "zmy_responder",
			Name:      "command_duration_seconds",
			Help:      "Wall time of node commands, from exec to exit or kill (zmyctl), or from request to answer (admin API).",
			Buckets:   []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"command"}),
	}
	if reg != nil {
		var err error
		if m.commands, err = promreg.Register(reg, m.commands); err != nil {
			return nil, err
		}
		if m.duration, err = promreg.Register(reg, m.duration); err != nil {
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
