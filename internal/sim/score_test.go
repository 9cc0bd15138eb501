package sim

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The model's netcheck answers with the score of its current network, faults included.
func TestModelNetcheckScore(t *testing.T) {
	tm := newTestModel(t, 5)
	addrs := make([]string, 5)
	all := func() []float64 {
		out := make([]float64, 5)
		for i := range out {
			out[i] = tm.m.netcheck(i, addrs).PartitionScore
		}
		return out
	}
	require.Equal(t, []float64{0, 0, 0, 0, 0}, all(), "connected")

	tm.partition("n1,n2,n3/n4,n5")
	require.Equal(t, []float64{1, 1, 1, 1, 1}, all(), "3|2 split")
	tm.heal()
	require.Equal(t, []float64{0, 0, 0, 0, 0}, all(), "healed")

	tm.m.nodes[2].killed = true
	tm.m.recomputeTopology(tm.now)
	require.Equal(t, []float64{0, 0, 0, 0, 0}, all(), "n3 dead is not a partition")
	tm.m.nodes[2].killed = false

	// A firewall rule divides the network as much as a cut cable does: the score says so, and
	// netcheck's firewall_blocked says why (the responder's verdict calls it a deliberate block).
	tm.m.nodes[3].firewall = true
	tm.m.recomputeTopology(tm.now)
	require.Equal(t, []float64{1, 1, 1, 1, 1}, all(), "n4 firewalled")
}
