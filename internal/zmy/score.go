package zmy

// PartitionScore is node self's netcheck partition_score, as docs/node-contract.md defines it:
// how cleanly the network cuts self's side off from the live peers self cannot reach.
//
// Self's side is self and the peers it reaches. A live peer self cannot reach is "cut"; a peer
// that is down (its host answers, its ZMY process does not) is not a network problem and is left
// out. With `--full`, netcheck asks every member of its side whether it reaches each cut peer;
// the score is the share of (side member, cut peer) pairs that cannot talk:
//
//	score = |{(s, p) : s ∈ side, p ∈ cut, s does not reach p}| / (|side| × |cut|),  0 when cut is empty
//
// A clean split of any shape scores 1 on every node: nobody on a side reaches anybody off it.
// One flaky link a–b scores 1/|side| on a and b (0.25 on 5 nodes; the rest of the side still
// reaches the peer) and 0 elsewhere; a dead node scores 0; a healed network scores 0.
//
// n is the number of nodes, reach(a, b) whether a can exchange heartbeats with b, down(i)
// whether node i's process is dead. This is the reference a node implements; the simulator
// uses it, the responder only reads the number.
func PartitionScore(n, self int, reach func(a, b int) bool, down func(i int) bool) float64 {
	if down(self) {
		return 0
	}
	var side, cut []int
	for j := range n {
		switch {
		case j == self || reach(self, j):
			side = append(side, j)
		case !down(j):
			cut = append(cut, j)
		}
	}
	if len(cut) == 0 {
		return 0
	}
	apart := 0
	for _, s := range side {
		for _, p := range cut {
			if !reach(s, p) {
				apart++
			}
		}
	}
	return float64(apart) / float64(len(side)*len(cut))
}
