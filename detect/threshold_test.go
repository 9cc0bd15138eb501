package detect

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
)

func TestComputeThreshold(t *testing.T) {
	cfg := config.DefaultDetection.Threshold
	at := time.Unix(1000, 0)
	ss := func(vs ...float64) []sample {
		out := make([]sample, len(vs))
		for i, v := range vs {
			out[i] = sample{At: at, Value: v}
		}
		return out
	}
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i+1) / 50 // 0.02 … 2.00 s
	}
	for _, tc := range []struct {
		name     string
		rtt, lag []sample
		want     time.Duration
	}{
		{"no samples is the minimum", nil, nil, 2 * time.Second},
		{"fast loopback stays at the minimum", ss(0.0004, 0.0005), ss(0.001), 2 * time.Second},
		{"slow network raises it", ss(1.0, 1.5), ss(0.5), time.Duration((1.8*1.5 + 0.5) * float64(time.Second))},
		{"P99 of 100 samples is the 99th", ss(hundred...), nil, time.Duration(1.8 * 1.98 * float64(time.Second))},
		{"median lag of odd count", ss(1.2), ss(0.1, 0.9, 0.3), time.Duration((1.8*1.2 + 0.3) * float64(time.Second))},
		{"lag alone", nil, ss(2.5), 2500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := computeThreshold(tc.rtt, tc.lag, cfg)
			require.InDelta(t, tc.want.Seconds(), got.Seconds(), 1e-6)
		})
	}
}

func TestThresholdStateWindowAndRecompute(t *testing.T) {
	cfg := config.ThresholdConfig{
		Min: model.Duration(2 * time.Second), RTTFactor: 2,
		Window: model.Duration(60 * time.Second), Recompute: model.Duration(10 * time.Second),
	}
	t0 := time.Unix(5000, 0)
	var s thresholdState

	d, re := s.current(t0, cfg)
	require.True(t, re, "first read computes")
	require.Equal(t, 2*time.Second, d)

	// A slow heartbeat arrives, but the value is only recomputed once `recompute` has passed.
	s.observe(t0.Add(time.Second), []float64{1.5}, 0, true, cfg)
	d, re = s.current(t0.Add(5*time.Second), cfg)
	require.False(t, re)
	require.Equal(t, 2*time.Second, d)

	d, re = s.current(t0.Add(10*time.Second), cfg)
	require.True(t, re)
	require.Equal(t, 3*time.Second, d, "2 × 1.5s + median lag 0")

	// Fast samples later; the slow one still dominates P99 while inside the window …
	s.observe(t0.Add(30*time.Second), []float64{0.001, 0.002}, 0.001, true, cfg)
	d, _ = s.current(t0.Add(40*time.Second), cfg)
	require.Equal(t, 3*time.Second, d)

	// … and is forgotten once it is older than the window.
	d, _ = s.current(t0.Add(62*time.Second), cfg)
	require.Equal(t, 2*time.Second, d)
	require.Len(t, s.rtt, 2)

	// NaN RTTs (unreachable peers) are not samples.
	s.observe(t0.Add(63*time.Second), []float64{math.NaN()}, 0, false, cfg)
	require.Len(t, s.rtt, 2)
}
