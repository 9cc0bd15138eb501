package detect

import (
	"math"
	"slices"
	"time"

	"github.com/zmyorg/zmy-responder/internal/config"
)

// sample is one scraped value at the responder time it was read.
type sample struct {
	At    time.Time
	Value float64 // seconds
}

// thresholdState is a cluster's dynamic split-brain threshold: the seed's
// max(min, rtt_factor × P99(peer heartbeat RTT over window) + median sync lag), recomputed at
// most every `recompute`. All methods take the time, so tests drive it with a fake clock.
type thresholdState struct {
	rtt, lag   []sample
	value      time.Duration
	computedAt time.Time
}

// observe records one scrape's heartbeat RTTs and sync lag and drops samples older than window.
func (s *thresholdState) observe(now time.Time, rtts []float64, lag float64, hasLag bool, cfg config.ThresholdConfig) {
	for _, v := range rtts {
		if !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0 {
			s.rtt = append(s.rtt, sample{At: now, Value: v})
		}
	}
	if hasLag && !math.IsNaN(lag) && !math.IsInf(lag, 0) && lag >= 0 {
		s.lag = append(s.lag, sample{At: now, Value: lag})
	}
	s.prune(now, time.Duration(cfg.Window))
}

func (s *thresholdState) prune(now time.Time, window time.Duration) {
	cut := now.Add(-window)
	keep := func(xs []sample) []sample {
		i := 0
		for i < len(xs) && xs[i].At.Before(cut) {
			i++
		}
		return xs[i:]
	}
	s.rtt, s.lag = keep(s.rtt), keep(s.lag)
}

// current returns the threshold, recomputing it when it was never computed or is older than
// `recompute`; recomputed reports whether it did.
func (s *thresholdState) current(now time.Time, cfg config.ThresholdConfig) (d time.Duration, recomputed bool) {
	if !s.computedAt.IsZero() && now.Sub(s.computedAt) < time.Duration(cfg.Recompute) {
		return s.value, false
	}
	s.prune(now, time.Duration(cfg.Window))
	s.value = computeThreshold(s.rtt, s.lag, cfg)
	s.computedAt = now
	return s.value, true
}

// computeThreshold is the formula itself, over samples already restricted to the window.
// Without samples it is the minimum: no evidence of a slow network is no reason to wait longer.
func computeThreshold(rtt, lag []sample, cfg config.ThresholdConfig) time.Duration {
	minimum := time.Duration(cfg.Min)
	if len(rtt) == 0 && len(lag) == 0 {
		return minimum
	}
	secs := cfg.RTTFactor*quantile(values(rtt), 0.99) + quantile(values(lag), 0.5)
	d := time.Duration(secs * float64(time.Second))
	return max(minimum, d)
}

func values(xs []sample) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = x.Value
	}
	return out
}

// quantile is the nearest-rank quantile (q in [0,1]) of vs; 0 for no values. Nearest rank keeps
// P99 an observed RTT rather than an interpolation between two of them.
func quantile(vs []float64, q float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	rank := int(math.Ceil(q * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}
