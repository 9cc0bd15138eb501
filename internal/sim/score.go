package sim

import "github.com/zmyorg/zmy-responder/internal/zmy"

// partitionScore is node i's netcheck partition_score in the model's current network
// (zmy.PartitionScore: 1 on every node of a clean split, 0 once healed; a dead node is no cut).
func (m *model) partitionScore(i int) float64 {
	return zmy.PartitionScore(len(m.nodes), i, m.connected, func(j int) bool { return m.nodes[j].killed })
}
