package detect

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// This file judges the network condition and describes the partition: unreachability and what
// explains it, firewalled nodes, the partition score and the groups.

// judgeNetwork looks for unreachability the SOP accepts as a partition: the responder cannot
// open a node's peer port, a node's netcheck cannot reach a peer, or a node's heartbeat to a peer
// is down or older than the threshold — unless a firewall rule on either end explains it.
// It also returns, per node, the peers whose heartbeat it reported stale.
func judgeNetwork(ev readings, p decideParams, majority int) (judgement, map[string][]string) {
	fw := firewalled(ev, p.Nodes)
	var answered int
	// Unreachability by how it was seen, each item "from→to"; explained ones are kept apart.
	kinds := []string{"peer port unreachable from the responder", "netcheck unreachable", "heartbeat stale"}
	unexplained := make([][]string, len(kinds))
	var explained []string
	stale := map[string][]string{}
	note := func(kind int, from, to, how string) {
		s := from + "→" + to
		if how != "" {
			s += " " + how
		}
		if fw[from] || fw[to] {
			explained = append(explained, s)
		} else {
			unexplained[kind] = append(unexplained[kind], s)
		}
	}
	for _, n := range p.Nodes {
		checked := false
		if tr, ok := data[TCPReading](ev, n, ProbeTCP); ok {
			checked = true
			if !tr.Reachable {
				note(0, "responder", n, tr.Why)
			}
		}
		if nc, ok := data[zmy.Netcheck](ev, n, ProbeNetcheck); ok {
			checked = true
			for _, pc := range nc.Peers {
				if !pc.Reachable {
					note(1, n, pc.Peer, "")
				}
			}
		}
		if m, ok := data[zmy.NodeMetrics](ev, n, ProbeData); ok {
			for _, peer := range sortedKeys(m.PeerUp) {
				rtt, hasRTT := m.PeerRTT[peer]
				switch {
				case !m.PeerUp[peer]:
					stale[n] = append(stale[n], peer)
					note(2, n, peer, "down")
				case hasRTT && p.Threshold > 0 && rtt > p.Threshold.Seconds():
					stale[n] = append(stale[n], peer)
					note(2, n, peer, fmt.Sprintf("rtt %.3fs > threshold %s", rtt, p.Threshold))
				}
			}
		}
		if checked {
			answered++
		}
	}
	j := judgement{judged: answered >= majority}
	var parts []string
	for k, items := range unexplained {
		if len(items) > 0 {
			j.held = true
			parts = append(parts, kinds[k]+": "+list(items))
		}
	}
	if len(explained) > 0 {
		parts = append(parts, fmt.Sprintf("unreachability explained by a firewall rule on %s (deliberate block): %s",
			list(sortedTrue(fw)), list(explained)))
	}
	if len(parts) == 0 {
		parts = append(parts, "every peer port and heartbeat reachable")
	}
	parts = append(parts, fmt.Sprintf("%d of %d nodes checked", answered, len(p.Nodes)))
	j.why = strings.Join(parts, "; ")
	return j, stale
}

// firewalled is the set of nodes with a firewall rule on the peer port. netcheck flags a peer
// pair as blocked when a rule sits on either end, so the nodes holding rules are the smallest set
// covering every flagged pair; the greedy cover (most flagged pairs first) finds it for the rules
// an operator sets: one node firewalled is flagged by every peer, each of which is flagged once.
func firewalled(ev readings, nodes []string) map[string]bool {
	pairs := map[[2]string]bool{}
	for _, n := range nodes {
		nc, ok := data[zmy.Netcheck](ev, n, ProbeNetcheck)
		if !ok {
			continue
		}
		for _, pc := range nc.Peers {
			if pc.FirewallBlocked {
				a, b := min(n, pc.Peer), max(n, pc.Peer)
				pairs[[2]string{a, b}] = true
			}
		}
	}
	fw := map[string]bool{}
	for len(pairs) > 0 {
		degree := map[string]int{}
		for pr := range pairs {
			degree[pr[0]]++
			degree[pr[1]]++
		}
		best := ""
		for _, n := range sortedKeys(degree) {
			if best == "" || degree[n] > degree[best] {
				best = n
			}
		}
		fw[best] = true
		for pr := range pairs {
			if pr[0] == best || pr[1] == best {
				delete(pairs, pr)
			}
		}
	}
	return fw
}

func maxPartitionScore(ev readings) float64 {
	score := 0.0
	for n := range ev.byNode {
		if nc, ok := data[zmy.Netcheck](ev, n, ProbeNetcheck); ok && !math.IsNaN(nc.PartitionScore) {
			score = max(score, nc.PartitionScore)
		}
	}
	return score
}

// groups partitions the nodes by reachability: two nodes are in one group when either's netcheck
// or heartbeat reports the other reachable. Without any such answer there are no groups.
func groups(ev readings, nodes []string) [][]string {
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		if parent[x] != x {
			parent[x] = find(parent[x])
		}
		return parent[x]
	}
	known := map[string]bool{}
	for _, n := range nodes {
		parent[n], known[n] = n, true
	}
	checked := false
	join := func(a, b string) {
		if known[b] {
			parent[find(b)] = find(a)
		}
	}
	for _, n := range nodes {
		if nc, ok := data[zmy.Netcheck](ev, n, ProbeNetcheck); ok {
			checked = true
			for _, pc := range nc.Peers {
				if pc.Reachable {
					join(n, pc.Peer)
				}
			}
		}
		// Heartbeats group a node whose zmyctl hangs but whose /metrics still answers.
		if m, ok := data[zmy.NodeMetrics](ev, n, ProbeData); ok {
			for peer, up := range m.PeerUp {
				if up {
					checked = true
					join(n, peer)
				}
			}
		}
	}
	if !checked {
		return nil
	}
	byRoot := map[string][]string{}
	for _, n := range nodes {
		byRoot[find(n)] = append(byRoot[find(n)], n)
	}
	out := make([][]string, 0, len(byRoot))
	for _, g := range byRoot {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool {
		if len(out[i]) != len(out[j]) {
			return len(out[i]) > len(out[j])
		}
		return slices.Index(nodes, out[i][0]) < slices.Index(nodes, out[j][0])
	})
	return out
}
