package detect

import (
	"fmt"
	"strings"
	"time"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// Root causes and SOPs (rules/RUNBOOKS.md).
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
	parts = append(parts, fmt.Sprintf("%d of %d nodes answered", answered, len(p.Nodes))+noAnswerFrom(ev, p.Nodes, ProbeControl, ProbeRaftState))
	j.why = strings.Join(parts, "; ")
	return j
}

// noAnswerFrom names the nodes none of whose probes answered, with the first probe's reason:
// ", no answer from n3 (data: malformed /metrics …)"; "" when every node answered one.
func noAnswerFrom(ev readings, nodes []string, probes ...string) string {
	var out []string
	for _, n := range nodes {
		var why string
		answered := false
		for _, pr := range probes {
			res, ok := ev.byNode[n][pr]
			if ok && res.Answered() {
				answered = true
				break
			}
			if why == "" && ok && res.Reason != "" {
				why = pr + ": " + res.Reason
			}
		}
		if answered {
			continue
		}
		if why == "" {
			why = "not probed"
		}
		out = append(out, fmt.Sprintf("%s (%s)", n, why))
	}
	if len(out) == 0 {
		return ""
	}
	return ", no answer from " + list(out)
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
	j.why += fmt.Sprintf("; %d of %d nodes scraped", answered, len(p.Nodes)) + noAnswerFrom(ev, p.Nodes, ProbeData)
	if answered > 1 && !first.IsZero() && last.After(first) {
		// Indexes move with every write: how far apart the scrapes were bounds honest skew.
		j.why += fmt.Sprintf(" within %s", last.Sub(first).Round(time.Millisecond))
	}
	return j
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
