// Package promreg registers Prometheus collectors that may already be registered: a component
// rebuilt on the same registry (a reload, a journal reopened in place, several in one test)
// keeps counting into the series it exported before instead of failing.
package promreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c on reg and returns it, or returns the identical collector registered
// earlier. Any other registration error (a name clash with different labels or help) is
// returned with c.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
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
