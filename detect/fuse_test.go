package detect

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
)

func TestClockFuse(t *testing.T) {
	cfg := config.DefaultDetection.ClockFuse // 500ms, 300ms/min, 3 breaches
	t0 := time.Unix(10_000, 0)
	rd := func(node string, sec int, offset time.Duration) ClockReading {
		return ClockReading{Node: node, At: t0.Add(time.Duration(sec) * time.Second), Offset: offset,
			Uncertainty: time.Millisecond}
	}
	ms := time.Millisecond
	type round struct {
		readings    []ClockReading
		tripped     bool
		breachesOf3 int // consecutive breaches of n3 after the round
	}
	for _, tc := range []struct {
		name   string
		rounds []round
	}{
		{"clean readings never trip", []round{
			{[]ClockReading{rd("n1", 0, 2*ms), rd("n3", 0, -3*ms)}, false, 0},
			{[]ClockReading{rd("n1", 10, 1*ms), rd("n3", 10, -2*ms)}, false, 0},
		}},
		{"+800ms trips on the third consecutive reading and resets when clean", []round{
			{[]ClockReading{rd("n1", 0, 0), rd("n3", 0, 800*ms)}, false, 1},
			{[]ClockReading{rd("n1", 10, 0), rd("n3", 10, 800*ms)}, false, 2},
			{[]ClockReading{rd("n1", 20, 0), rd("n3", 20, 801*ms)}, true, 3},
			{[]ClockReading{rd("n3", 30, 799*ms)}, true, 4},
			{[]ClockReading{rd("n1", 90, 0), rd("n3", 90, 1*ms)}, false, 0},
		}},
		{"negative offsets count too", []round{
			{[]ClockReading{rd("n3", 0, -600*ms)}, false, 1},
			{[]ClockReading{rd("n3", 1, -600*ms)}, false, 2},
			{[]ClockReading{rd("n3", 2, -600*ms)}, true, 3},
		}},
		{"a clean reading in between restarts the count", []round{
			{[]ClockReading{rd("n3", 0, 900*ms)}, false, 1},
			{[]ClockReading{rd("n3", 600, 0)}, false, 0},
			{[]ClockReading{rd("n3", 1200, 900*ms)}, false, 1},
			{[]ClockReading{rd("n3", 1800, 900*ms)}, false, 2},
		}},
		{"drift above 300ms/min trips although every offset is under 500ms", []round{
			{[]ClockReading{rd("n3", 0, 0)}, false, 0},
			{[]ClockReading{rd("n3", 20, 120*ms)}, false, 1}, // 354ms/min beyond uncertainty
			{[]ClockReading{rd("n3", 40, 240*ms)}, false, 2},
			{[]ClockReading{rd("n3", 60, 360*ms)}, true, 3},
			{[]ClockReading{rd("n3", 120, 365*ms)}, false, 0}, // steady again
		}},
		{"a step back toward true time is a correction, not drift", []round{
			{[]ClockReading{rd("n3", 0, 400*ms)}, false, 0},
			{[]ClockReading{rd("n3", 1, 2*ms)}, false, 0},
			{[]ClockReading{rd("n3", 2, -300*ms)}, false, 1}, // overshooting past zero is drift again
		}},
		{"jitter within the readings' uncertainty is not drift", []round{
			{[]ClockReading{{Node: "n3", At: t0, Offset: 0, Uncertainty: 20 * ms}}, false, 0},
			{[]ClockReading{{Node: "n3", At: t0.Add(time.Second), Offset: 35 * ms, Uncertainty: 20 * ms}}, false, 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s FuseState
			for i, r := range tc.rounds {
				s = s.observe(r.readings, cfg)
				require.Equal(t, r.tripped, s.Tripped(cfg), "round %d", i)
				require.Equal(t, r.breachesOf3, s.Nodes["n3"].Breaches, "round %d", i)
				if r.tripped {
					require.Contains(t, s.TrippedNodes(cfg), "n3")
					require.NotEmpty(t, s.TrippedNodes(cfg)["n3"], "a tripped node says why")
				}
			}
		})
	}
}

func TestClockFuseIsAValue(t *testing.T) {
	cfg := config.DefaultDetection.ClockFuse
	var s FuseState
	s1 := s.observe([]ClockReading{{Node: "n1", At: time.Unix(1, 0), Offset: time.Second}}, cfg)
	s2 := s1.observe([]ClockReading{{Node: "n1", At: time.Unix(2, 0), Offset: time.Second}}, cfg)
	require.Equal(t, 1, s1.Nodes["n1"].Breaches, "observe does not mutate its receiver")
	require.Equal(t, 2, s2.Nodes["n1"].Breaches)
	s3 := s2.forget(func(n string) bool { return n != "n1" })
	require.Empty(t, s3.Nodes)
	require.Len(t, s2.Nodes, 1)
}
