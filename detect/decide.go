package detect

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// Root causes and SOPs (SPEC §1).
const (
	RootCauseNetwork = "network_partition"
	SOPQuorumDown    = "SOP-ZMY-001"
	SOPNetwork       = "SOP-ZMY-003"
)

// decideParams are the inputs of decide besides the evidence.
type decideParams struct {
	Nodes          []string // configured node ids, in config order
	ShardTolerance uint64
	RootCauseScore float64
	Threshold      time.Duration // probe budget; a heartbeat RTT above it is stale
	Fuse           config.ClockFuseConfig
	At             time.Time
}

// judgement is one SOP condition: whether it holds, whether enough nodes answered to trust a
// "does not hold", and why, in a sentence fragment.
type judgement struct {
	held, judged bool
	why          string
}

// decide is the verdict: a pure function of the probe results, the parameters and the clock
// fuse. confirmed needs all three SOP conditions; one condition that does not hold, on answers
// from a majority of nodes, makes it not_confirmed; otherwise the split cannot be judged and it
// is inconclusive — as it is whenever the clock fuse is tripped.
func decide(results []Result, p decideParams, fuse FuseState) incident.Verdict {
	ev := index(results)
	majority := len(p.Nodes)/2 + 1

	control := judgeControl(ev, p, majority)
	data := judgeData(ev, p, majority)
	network, staleFrom := judgeNetwork(ev, p, majority)
	score := maxPartitionScore(ev)

	v := incident.Verdict{
		Conditions: map[incident.Condition]bool{
			incident.CondControl: control.held,
			incident.CondData:    data.held,
			incident.CondNetwork: network.held,
		},
		PartitionScore: score,
		ClockFuse:      fuse.Tripped(p.Fuse),
		Threshold:      p.Threshold,
		At:             p.At,
		Healthy:        healthy(ev, p),
		Groups:         groups(ev, p.Nodes),
		SOP:            SOPQuorumDown,
	}
	if score > p.RootCauseScore {
		v.RootCause, v.SOP = RootCauseNetwork, SOPNetwork
	}
	conds := []struct {
		name string
		j    judgement
	}{{"control", control}, {"data", data}, {"network", network}}
	summary := make([]string, 0, len(conds))
	for _, c := range conds {
		summary = append(summary, c.name+": "+c.j.why)
	}
	all := strings.Join(summary, "; ")

	switch {
	case v.ClockFuse:
		v.Kind = incident.VerdictInconclusive
		v.Reason = "clock fuse tripped (" + describeFuse(fuse, p.Fuse) + "): time-based evidence is untrustworthy; " + all
	case control.held && data.held && network.held:
		v.Kind = incident.VerdictConfirmed
		v.Reason = "split-brain confirmed: " + all
	default:
		var refuted, unjudged, holding []string
		for _, c := range conds {
			switch {
			case c.j.held:
				holding = append(holding, c.name+": "+c.j.why)
			case c.j.judged:
				refuted = append(refuted, c.name+": "+c.j.why)
			default:
				unjudged = append(unjudged, c.name+": "+c.j.why)
			}
		}
		if len(refuted) > 0 {
			v.Kind = incident.VerdictNotConfirmed
			v.Reason = "not a split-brain: " + strings.Join(refuted, "; ")
			if len(holding) > 0 {
				v.Reason += "; holding nonetheless: " + strings.Join(holding, "; ")
			}
		} else {
			v.Kind = incident.VerdictInconclusive
			v.Reason = "cannot judge the split: " + strings.Join(unjudged, "; ")
		}
	}
	v.Evidence = evidence(results, fuse, p, staleFrom)
	return v
}

// readings is the evidence indexed by node and probe.
type readings struct {
	byNode  map[string]map[string]Result
	cluster []Result
}

func index(results []Result) readings {
	r := readings{byNode: map[string]map[string]Result{}}
	for _, res := range results {
		if res.Node == "" {
			r.cluster = append(r.cluster, res)
			continue
		}
		if r.byNode[res.Node] == nil {
			r.byNode[res.Node] = map[string]Result{}
		}
		r.byNode[res.Node][res.Probe] = res
	}
	return r
}

// data returns the typed reading of node's probe, if it answered with one.
func data[T any](r readings, node, probe string) (*T, bool) {
	res, ok := r.byNode[node][probe]
	if !ok || !res.Answered() {
		return nil, false
	}
	d, ok := res.Data.(*T)
	return d, ok && d != nil
}

func judgeControl(ev readings, p decideParams, majority int) judgement {
	var answered int
	var lost []string
	leaders := map[string][]string{} // leader_id -> nodes reporting it
	for _, n := range p.Nodes {
		qs, okQ := data[zmy.QuorumStatus](ev, n, ProbeControl)
		rs, okR := data[zmy.RaftState](ev, n, ProbeRaftState)
		if !okQ && !okR {
			continue
		}
		answered++
		seen := map[string]bool{}
		if okQ {
			if qs.Quorum == zmy.QuorumLost {
				lost = append(lost, n)
			}
			seen[qs.LeaderID] = true
		}
		if okR {
			seen[rs.LeaderID] = true
		}
		for id := range seen {
			if id != "" {
				leaders[id] = append(leaders[id], n)
			}
		}
	}
	j := judgement{held: len(lost) > 0 || len(leaders) > 1, judged: answered >= majority}
	ids := sortedKeys(leaders)
	var parts []string
	if len(lost) > 0 {
		parts = append(parts, "QUORUM_LOST on "+list(lost))
	}
	switch {
	case len(leaders) > 1:
		ls := make([]string, 0, len(ids))
		for _, id := range ids {
			ls = append(ls, fmt.Sprintf("%s (%s)", id, list(leaders[id])))
		}
		parts = append(parts, "leader_ids differ: "+strings.Join(ls, ", "))
	case len(leaders) == 1 && !j.held:
		parts = append(parts, fmt.Sprintf("QUORUM_OK with one leader %s", ids[0]))
	case len(leaders) == 0 && !j.held && answered > 0:
		parts = append(parts, "no leader reported")
	}
	parts = append(parts, fmt.Sprintf("%d of %d nodes answered", answered, len(p.Nodes)))
	j.why = strings.Join(parts, "; ")
	return j
}

func judgeData(ev readings, p decideParams, majority int) judgement {
	type span struct {
		lo, hi         uint64
		loNode, hiNode string
	}
	shards := map[string]*span{}
	var answered int
	var first, last time.Time
	for _, n := range p.Nodes {
		m, ok := data[zmy.NodeMetrics](ev, n, ProbeData)
		if !ok {
			continue
		}
		answered++
		if first.IsZero() || m.Start.Before(first) {
			first = m.Start
		}
		if m.End.After(last) {
			last = m.End
		}
		for id, idx := range m.Shards {
			s := shards[id]
			if s == nil {
				shards[id] = &span{lo: idx, hi: idx, loNode: n, hiNode: n}
				continue
			}
			if idx < s.lo {
				s.lo, s.loNode = idx, n
			}
			if idx > s.hi {
				s.hi, s.hiNode = idx, n
			}
		}
	}
	var diverged []string
	for _, id := range sortedKeys(shards) {
		s := shards[id]
		if s.hi-s.lo > p.ShardTolerance {
			diverged = append(diverged, fmt.Sprintf("shard %s spread %d (%s=%d, %s=%d)",
				id, s.hi-s.lo, s.hiNode, s.hi, s.loNode, s.lo))
		}
	}
	j := judgement{held: len(diverged) > 0, judged: answered >= majority && answered >= 2}
	if j.held {
		j.why = fmt.Sprintf("%s > tolerance %d", list(diverged), p.ShardTolerance)
	} else {
		j.why = fmt.Sprintf("%d shards agree within tolerance %d", len(shards), p.ShardTolerance)
	}
	j.why += fmt.Sprintf("; %d of %d nodes scraped", answered, len(p.Nodes))
	if answered > 1 && !first.IsZero() && last.After(first) {
		// Indexes move with every write: how far apart the scrapes were bounds honest skew.
		j.why += fmt.Sprintf(" within %s", last.Sub(first).Round(time.Millisecond))
	}
	return j
}

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

// healthy is remediate's `verifying` check: every node answered control and data, all report
// QUORUM_OK, exactly one leader_id is reported, and every shard agrees within tolerance.
func healthy(ev readings, p decideParams) bool {
	if len(p.Nodes) == 0 {
		return false
	}
	leaders := map[string]bool{}
	shards := map[string][2]uint64{}
	for _, n := range p.Nodes {
		qs, ok := data[zmy.QuorumStatus](ev, n, ProbeControl)
		if !ok || qs.Quorum != zmy.QuorumOK {
			return false
		}
		leaders[qs.LeaderID] = true
		if rs, ok := data[zmy.RaftState](ev, n, ProbeRaftState); ok {
			leaders[rs.LeaderID] = true
		}
		m, ok := data[zmy.NodeMetrics](ev, n, ProbeData)
		if !ok {
			return false
		}
		for id, idx := range m.Shards {
			s, seen := shards[id]
			if !seen {
				s = [2]uint64{idx, idx}
			}
			shards[id] = [2]uint64{min(s[0], idx), max(s[1], idx)}
		}
	}
	if len(leaders) != 1 || leaders[""] {
		return false
	}
	for _, s := range shards {
		if s[1]-s[0] > p.ShardTolerance {
			return false
		}
	}
	return true
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
