package sim

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The network as the model sees it: partition groups, firewall rules and killed nodes make
// the connected components that elect leaders, and decide which peer ports the responder
// can still reach.

// setPartition places every node in one of groups; the caller recomputes the topology.
func (m *model) setPartition(groups [][]string) error {
	groupOf := make([]int, len(m.nodes))
	seen := make([]bool, len(m.nodes))
	for g, ids := range groups {
		if len(ids) == 0 {
			return fmt.Errorf("partition: group %d is empty", g+1)
		}
		for _, id := range ids {
			i, err := m.nodeIndex(id)
			if err != nil {
				return fmt.Errorf("partition: %w", err)
			}
			if seen[i] {
				return fmt.Errorf("partition: node %s is listed twice", id)
			}
			seen[i] = true
			groupOf[i] = g
		}
	}
	var missing []string
	for i, ok := range seen {
		if !ok {
			missing = append(missing, m.nodes[i].id)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("partition: every node must be listed exactly once; missing %s", strings.Join(missing, ","))
	}
	m.groupOf, m.groupCount = groupOf, len(groups)
	return nil
}

func (m *model) ids() []string {
	out := make([]string, len(m.nodes))
	for i, n := range m.nodes {
		out[i] = n.id
	}
	return out
}

func (m *model) anyFirewall() bool {
	return slices.ContainsFunc(m.nodes, func(n *nodeState) bool { return n.firewall })
}

// split reports whether the network is divided: a partition or a firewall rule in effect.
func (m *model) split() bool { return m.groupCount > 1 || m.anyFirewall() }

// networkGroups is the partition refined by firewall rules: a firewalled node is a group of
// its own. Killed nodes stay in their group; a crash is not a partition.
func (m *model) networkGroups() [][]int {
	groups := make([][]int, m.groupCount)
	var alone [][]int
	for i, n := range m.nodes {
		if n.firewall {
			alone = append(alone, []int{i})
			continue
		}
		groups[m.groupOf[i]] = append(groups[m.groupOf[i]], i)
	}
	groups = slices.DeleteFunc(groups, func(g []int) bool { return len(g) == 0 })
	return append(groups, alone...)
}

// connected reports whether nodes a and b can exchange heartbeats.
func (m *model) connected(a, b int) bool {
	na, nb := m.nodes[a], m.nodes[b]
	if na.killed || nb.killed {
		return false
	}
	if a == b {
		return true
	}
	return !na.firewall && !nb.firewall && m.groupOf[a] == m.groupOf[b]
}

// recomputeTopology rebuilds the connected components after a fault and opens a partition
// episode when the network has just split.
func (m *model) recomputeTopology(now time.Time) {
	m.comps = m.comps[:0]
	m.compKeys = m.compKeys[:0]
	m.compOf = make([]int, len(m.nodes))
	byGroup := map[int]int{}
	for i, n := range m.nodes {
		m.compOf[i] = -1
		if n.killed {
			continue
		}
		if !n.firewall {
			if c, ok := byGroup[m.groupOf[i]]; ok {
				m.comps[c] = append(m.comps[c], i)
				m.compOf[i] = c
				continue
			}
			byGroup[m.groupOf[i]] = len(m.comps)
		}
		m.compOf[i] = len(m.comps)
		m.comps = append(m.comps, []int{i})
	}
	for _, c := range m.comps {
		m.compKeys = append(m.compKeys, m.groupString(c))
	}
	if groups := m.networkGroups(); len(groups) > 1 {
		m.lastGroups = groups
		if m.episode == nil {
			m.episodes++
			m.episode = &episode{id: m.episodes, started: now, snapshots: map[int]bool{}}
		}
	}
}

// groupString renders node indexes as "n1,n2,n3".
func (m *model) groupString(g []int) string {
	ids := make([]string, len(g))
	for i, idx := range g {
		ids[i] = m.nodes[idx].id
	}
	return strings.Join(ids, ",")
}

func (m *model) groupsString(gs [][]int) string {
	parts := make([]string, len(gs))
	for i, g := range gs {
		parts[i] = m.groupString(g)
	}
	return strings.Join(parts, "/")
}

// responderSide is the partition group the responder sits with: the largest, ties broken by
// the lowest node index. Nodes outside it stop answering on their peer port.
func (m *model) responderSide() int {
	sizes := make([]int, m.groupCount)
	first := make([]int, m.groupCount)
	for i := range first {
		first[i] = len(m.nodes)
	}
	for i, g := range m.groupOf {
		sizes[g]++
		first[g] = min(first[g], i)
	}
	best := 0
	for g := range sizes {
		if c := cmp.Compare(sizes[g], sizes[best]); c > 0 || (c == 0 && first[g] < first[best]) {
			best = g
		}
	}
	return best
}

// peerOpen reports whether node i's peer port should accept TCP.
func (m *model) peerOpen(i int) bool {
	n := m.nodes[i]
	return !n.killed && !n.firewall && m.groupOf[i] == m.responderSide()
}
