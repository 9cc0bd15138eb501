package promreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestRegisterReusesTheIdenticalCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	first, err := Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"}))
	require.NoError(t, err)
	first.Inc()

	again, err := Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"}))
	require.NoError(t, err)
	again.Inc()
	require.Equal(t, 2.0, testutil.ToFloat64(first), "the second registration counts into the first series")

	_, err = Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "other help"}))
	require.Error(t, err, "a clash is not a re-registration")
}
