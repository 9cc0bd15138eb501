package zmy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The SOP reads partition_score > 0.8 as "the root cause is the network" and the recovery gate
// reads a score at or below converged_partition_score (0 by default) as "the network healed".
// These are the shapes that have to land on the right side of both.
const rootCauseBound = 0.8

// groupsOf turns "n1,n2,n3/n4,n5" into each node's group number, nodes numbered from n1.
func groupsOf(t *testing.T, spec string) []int {
	t.Helper()
	var g []int
	for k, part := range strings.Split(spec, "/") {
		for _, id := range strings.Split(part, ",") {
			var i int
			_, err := fmt.Sscanf(id, "n%d", &i)
			require.NoError(t, err)
			for len(g) < i {
				g = append(g, -1)
			}
			g[i-1] = k
		}
	}
	return g
}

func scores(n int, reach func(a, b int) bool, down func(int) bool) []float64 {
	out := make([]float64, n)
	for i := range n {
		out[i] = PartitionScore(n, i, reach, down)
	}
	return out
}

func TestPartitionScoreCleanSplitsOfAnyShape(t *testing.T) {
	for _, spec := range []string{
		"n1,n2,n3/n4,n5",
		"n1,n2,n3,n4/n5",
		"n1,n2/n3,n4",
		"n1/n2",
		"n1,n2,n3/n4,n5/n6,n7",
		"n1/n2/n3/n4/n5",
		"n1,n2,n3,n4,n5,n6,n7,n8,n9/n10",
	} {
		t.Run(spec, func(t *testing.T) {
			g := groupsOf(t, spec)
			got := scores(len(g), func(a, b int) bool { return g[a] == g[b] }, func(int) bool { return false })
			for i, s := range got {
				require.Greater(t, s, rootCauseBound, "n%d in %s", i+1, spec)
				require.Equal(t, 1.0, s, "n%d in %s", i+1, spec)
			}
		})
	}
}

func TestPartitionScoreFlakyLinkDeadNodeAndHealed(t *testing.T) {
	none := func(int) bool { return false }
	all := func(a, b int) bool { return true }
	tests := []struct {
		name  string
		n     int
		reach func(a, b int) bool
		down  func(int) bool
		want  []float64
	}{
		{name: "healed", n: 5, reach: all, down: none, want: []float64{0, 0, 0, 0, 0}},
		{name: "one flaky link n1-n2 of 5", n: 5,
			reach: func(a, b int) bool { return !(min(a, b) == 0 && max(a, b) == 1) }, down: none,
			want: []float64{0.25, 0.25, 0, 0, 0}},
		{name: "one flaky link n1-n2 of 3", n: 3,
			reach: func(a, b int) bool { return !(min(a, b) == 0 && max(a, b) == 1) }, down: none,
			want: []float64{0.5, 0.5, 0}},
		{name: "n3 dead", n: 5,
			reach: func(a, b int) bool { return a == b || (a != 2 && b != 2) }, down: func(i int) bool { return i == 2 },
			want: []float64{0, 0, 0, 0, 0}},
		{name: "3|2 split with n5 dead", n: 5,
			reach: func(a, b int) bool { return a == b || (a < 3 && b < 3) || (a == 3 && b == 3) },
			down:  func(i int) bool { return i == 4 }, want: []float64{1, 1, 1, 1, 0}},
		{name: "3|2 split bridged by one link n3-n4", n: 5,
			reach: func(a, b int) bool {
				return (a < 3) == (b < 3) || (min(a, b) == 2 && max(a, b) == 3)
			}, down: none,
			// Still mostly split: n1 is cut from n4 and n5, and only n3 of its side reaches n4.
			want: []float64{5.0 / 6, 5.0 / 6, 3.0 / 4, 4.0 / 6, 5.0 / 6}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := scores(tc.n, tc.reach, tc.down)
			require.InDeltaSlice(t, tc.want, got, 1e-9)
		})
	}
}
