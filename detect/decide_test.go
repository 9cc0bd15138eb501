package detect

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// world describes a cluster as the probes would see it, and renders their results.
type world struct {
	nodes    []string
	group    map[string]int     // partition group of each node (0 when not partitioned)
	applied  map[int]uint64     // shard applied index per group
	down     map[string]bool    // killed: every probe errors, the peer port refuses
	hungCtl  map[string]bool    // zmyctl hangs: control, raft_state and netcheck time out
	skipped  map[string]bool    // breaker open
	firewall map[string]bool    // a firewall rule on the node's peer port
	rtt      map[string]float64 // heartbeat RTT override, seconds
}

func newWorld(n int) *world {
	w := &world{group: map[string]int{}, applied: map[int]uint64{0: 100}, down: map[string]bool{},
		hungCtl: map[string]bool{}, skipped: map[string]bool{}, firewall: map[string]bool{}, rtt: map[string]float64{}}
	for i := 1; i <= n; i++ {
		w.nodes = append(w.nodes, fmt.Sprintf("n%d", i))
	}
	return w
}

// split puts nodes in groups: split(3, 2) is n1-n3 | n4-n5; each group keeps its own shard index.
func (w *world) split(sizes ...int) *world {
	i := 0
	for g, size := range sizes {
		for range size {
			w.group[w.nodes[i]] = g
			i++
		}
		w.applied[g] = 100 + uint64(g)*7
	}
	return w
}

func (w *world) members(g int) []string {
	var out []string
	for _, n := range w.nodes {
		if w.group[n] == g && !w.down[n] && !w.firewall[n] {
			out = append(out, n)
		}
	}
	return out
}

func (w *world) reach(a, b string) bool {
	return !w.down[a] && !w.down[b] && !w.firewall[a] && !w.firewall[b] && w.group[a] == w.group[b]
}

// score is n's partition_score as the node contract defines it (zmy.PartitionScore).
func (w *world) score(n string) float64 {
	return zmy.PartitionScore(len(w.nodes), slices.Index(w.nodes, n),
		func(a, b int) bool { return a == b || w.reach(w.nodes[a], w.nodes[b]) },
		func(i int) bool { return w.down[w.nodes[i]] })
}

func (w *world) results() []Result {
	var out []Result
	for _, n := range w.nodes {
		if w.skipped[n] {
			for _, p := range []string{ProbeControl, ProbeRaftState, ProbeData, ProbeTCP, ProbeNetcheck, ProbeClock} {
				out = append(out, Result{Probe: p, Node: n, Status: StatusSkipped, Reason: "node breaker open"})
			}
			continue
		}
		if w.down[n] {
			for _, p := range []string{ProbeControl, ProbeRaftState, ProbeData, ProbeNetcheck, ProbeClock} {
				out = append(out, Result{Probe: p, Node: n, Status: StatusError, Reason: "connection refused"})
			}
			out = append(out, Result{Probe: ProbeTCP, Node: n, Status: StatusFail,
				Data: &TCPReading{Why: "refused"}, Reason: "refused"})
			continue
		}
		g := w.group[n]
		mates := w.members(g)
		if w.firewall[n] {
			mates = []string{n}
		}
		leader := mates[0]
		quorum := zmy.QuorumOK
		if len(mates) <= len(w.nodes)/2 {
			quorum = zmy.QuorumLost
		}
		idx := w.applied[g]
		if w.firewall[n] {
			idx += 3
		}
		m := &zmy.NodeMetrics{Shards: map[string]uint64{"1": idx, "2": idx}, PeerUp: map[string]bool{},
			PeerRTT: map[string]float64{}}
		nc := &zmy.Netcheck{Node: n}
		for _, p := range w.nodes {
			if p == n {
				continue
			}
			ok := w.reach(n, p)
			m.PeerUp[p] = ok
			if ok {
				m.PeerRTT[p] = 0.0004
				if v, set := w.rtt[n]; set {
					m.PeerRTT[p] = v
				}
			}
			// As the simulator does: a rule on either end flags the pair.
			nc.Peers = append(nc.Peers, zmy.PeerCheck{Peer: p, Reachable: ok, FirewallBlocked: w.firewall[n] || w.firewall[p]})
		}
		nc.PartitionScore = w.score(n)
		if w.hungCtl[n] {
			for _, p := range []string{ProbeControl, ProbeRaftState, ProbeNetcheck} {
				out = append(out, Result{Probe: p, Node: n, Status: StatusError, Reason: p + " " + n + ": timed out"})
			}
		} else {
			st := StatusOK
			if quorum == zmy.QuorumLost {
				st = StatusFail
			}
			out = append(out,
				Result{Probe: ProbeControl, Node: n, Status: st, Data: &zmy.QuorumStatus{Node: n, Quorum: quorum, LeaderID: leader, Term: 3}},
				Result{Probe: ProbeRaftState, Node: n, Status: StatusOK, Data: &zmy.RaftState{Node: n, RaftState: "follower", LeaderID: leader, Term: 3}},
				Result{Probe: ProbeNetcheck, Node: n, Status: StatusOK, Data: nc})
		}
		tcpOK := !w.firewall[n] && w.group[n] == 0
		tr := &TCPReading{Reachable: tcpOK}
		st := StatusOK
		if !tcpOK {
			tr.Why, st = "refused", StatusFail
		}
		out = append(out,
			Result{Probe: ProbeData, Node: n, Status: StatusOK, Data: m},
			Result{Probe: ProbeTCP, Node: n, Status: st, Data: tr},
			Result{Probe: ProbeClock, Node: n, Status: StatusOK, Data: &ClockReading{Node: n}})
	}
	return out
}

func (w *world) params() decideParams {
	return decideParams{Nodes: w.nodes, RootCauseScore: 0.8, Threshold: 2 * time.Second,
		Fuse: config.DefaultDetection.ClockFuse, At: time.Unix(1_700_000_000, 0)}
}

func trippedFuse(node string) FuseState {
	return FuseState{Nodes: map[string]nodeClock{node: {Breaches: 3, Reason: "offset +800ms exceeds 500ms"}}}
}

func TestDecide(t *testing.T) {
	type want struct {
		kind                   incident.VerdictKind
		control, data, network bool
		healthy                bool
		sop, rootCause         string
		groups                 [][]string
		reason                 []string // substrings of the reason
		supports               map[string]incident.Condition
	}
	for _, tc := range []struct {
		name   string
		world  *world
		tol    uint64
		fuse   FuseState
		mutate func([]Result) []Result
		want   want
	}{
		{name: "healthy 5 nodes", world: newWorld(5), want: want{
			kind: incident.VerdictNotConfirmed, healthy: true, sop: SOPQuorumDown,
			groups: [][]string{{"n1", "n2", "n3", "n4", "n5"}},
			reason: []string{"control: QUORUM_OK with one leader n1", "5 of 5 nodes answered"},
		}},
		{name: "3|2 partition", world: newWorld(5).split(3, 2), want: want{
			kind: incident.VerdictConfirmed, control: true, data: true, network: true, sop: SOPNetwork,
			rootCause: RootCauseNetwork,
			groups:    [][]string{{"n1", "n2", "n3"}, {"n4", "n5"}},
			reason: []string{"QUORUM_LOST on n4, n5", "leader_ids differ: n1 (n1, n2, n3), n4 (n4, n5)",
				"shard 1 spread 7", "peer port unreachable from the responder: responder→n4 refused, responder→n5 refused"},
			supports: map[string]incident.Condition{ProbeControl: incident.CondControl, ProbeData: incident.CondData,
				ProbeTCP: incident.CondNetwork, ProbeNetcheck: incident.CondNetwork, ProbeClock: incident.CondClock},
		}},
		{name: "7 nodes 3|2|2 is a network partition", world: newWorld(7).split(3, 2, 2), want: want{
			kind: incident.VerdictConfirmed, control: true, data: true, network: true,
			sop: SOPNetwork, rootCause: RootCauseNetwork,
			groups: [][]string{{"n1", "n2", "n3"}, {"n4", "n5"}, {"n6", "n7"}},
		}},
		{name: "firewall on n4 is a deliberate block", world: func() *world {
			w := newWorld(5)
			w.firewall["n4"] = true
			return w
		}(), want: want{
			kind: incident.VerdictNotConfirmed, control: true, data: true, network: false, sop: SOPNetwork,
			rootCause: RootCauseNetwork, groups: [][]string{{"n1", "n2", "n3", "n5"}, {"n4"}},
			reason: []string{"firewall rule on n4 (deliberate block)"},
		}},
		{name: "a firewall does not explain a real partition beside it", world: func() *world {
			w := newWorld(5).split(3, 2)
			w.firewall["n4"] = true
			return w
		}(), want: want{
			kind: incident.VerdictConfirmed, control: true, data: true, network: true, sop: SOPNetwork,
			rootCause: RootCauseNetwork, groups: [][]string{{"n1", "n2", "n3"}, {"n4"}, {"n5"}},
			reason: []string{"responder→n5 refused", "firewall rule on n4 (deliberate block)"},
		}},
		{name: "one node killed is not a split-brain", world: func() *world {
			w := newWorld(5)
			w.down["n2"] = true
			return w
		}(), want: want{
			kind: incident.VerdictNotConfirmed, network: true, sop: SOPQuorumDown,
			groups: [][]string{{"n1", "n3", "n4", "n5"}, {"n2"}},
			reason: []string{"control: QUORUM_OK with one leader n1; 4 of 5 nodes answered"},
		}},
		{name: "leaders differ but no shard diverged", world: func() *world {
			w := newWorld(5).split(3, 2)
			w.applied[1] = w.applied[0]
			return w
		}(), want: want{
			kind: incident.VerdictNotConfirmed, control: true, network: true, sop: SOPNetwork,
			rootCause: RootCauseNetwork,
			groups:    [][]string{{"n1", "n2", "n3"}, {"n4", "n5"}},
			reason:    []string{"not a split-brain: data: 2 shards agree within tolerance 0"},
		}},
		{name: "spread within tolerance is not divergence", world: newWorld(5).split(3, 2), tol: 7, want: want{
			kind: incident.VerdictNotConfirmed, control: true, network: true, sop: SOPNetwork,
			rootCause: RootCauseNetwork,
			groups:    [][]string{{"n1", "n2", "n3"}, {"n4", "n5"}},
		}},
		{name: "clock fuse tripped makes a partition inconclusive", world: newWorld(5).split(3, 2),
			fuse: trippedFuse("n3"), want: want{
				kind: incident.VerdictInconclusive, control: true, data: true, network: true, sop: SOPNetwork,
				rootCause: RootCauseNetwork,
				groups:    [][]string{{"n1", "n2", "n3"}, {"n4", "n5"}},
				reason:    []string{"clock fuse tripped (n3: offset +800ms exceeds 500ms on 3 consecutive readings)"},
			}},
		// Even with every condition held on the answers that came, one probe the daemon's budget
		// left without its turn makes the round inconclusive: a busy responder judges nothing
		// on partial evidence, and the starved probe is no failure of its node.
		{name: "a probe left without a slot makes a partition inconclusive", world: newWorld(5).split(3, 2),
			mutate: func(rs []Result) []Result {
				for i := range rs {
					if rs[i].Node == "n2" && rs[i].Probe == ProbeNetcheck {
						rs[i] = Result{Probe: ProbeNetcheck, Node: "n2", Status: StatusBudgetExhausted,
							Reason: budgetExhausted + ": no probe slot free before the round's budget ended"}
					}
				}
				return rs
			}, want: want{
				kind: incident.VerdictInconclusive, control: true, data: true, network: true, sop: SOPNetwork,
				rootCause: RootCauseNetwork,
				groups:    [][]string{{"n1", "n2", "n3"}, {"n4", "n5"}},
				reason:    []string{budgetExhausted + ": 1 of 30 probes got no probe slot in time"},
			}},
		{name: "hung zmyctl on one node still judges", world: func() *world {
			w := newWorld(5)
			w.hungCtl["n3"] = true
			return w
		}(), want: want{
			kind: incident.VerdictNotConfirmed, sop: SOPQuorumDown,
			groups: [][]string{{"n1", "n2", "n3", "n4", "n5"}},
			reason: []string{"4 of 5 nodes answered"},
		}},
		{name: "no node answered control", world: func() *world {
			w := newWorld(5).split(3, 2)
			for _, n := range w.nodes {
				w.hungCtl[n] = true
			}
			return w
		}(), want: want{
			kind: incident.VerdictInconclusive, data: true, network: true, sop: SOPQuorumDown,
			reason: []string{"cannot judge the split: control: 0 of 5 nodes answered"},
		}},
		{name: "a minority answering QUORUM_OK cannot rule out a rival leader", world: func() *world {
			w := newWorld(5).split(3, 2)
			for _, n := range []string{"n3", "n4", "n5"} {
				w.hungCtl[n] = true
			}
			return w
		}(), want: want{
			kind: incident.VerdictInconclusive, data: true, network: true, sop: SOPNetwork,
			rootCause: RootCauseNetwork,
			groups:    [][]string{{"n1", "n2", "n3"}, {"n4", "n5"}},
			reason:    []string{"control: QUORUM_OK with one leader n1; 2 of 5 nodes answered"},
		}},
		{name: "open breakers count as no answer", world: func() *world {
			w := newWorld(5)
			for _, n := range []string{"n1", "n2", "n3"} {
				w.skipped[n] = true
			}
			return w
		}(), want: want{
			kind: incident.VerdictInconclusive, sop: SOPQuorumDown, groups: [][]string{{"n1", "n2", "n3", "n4", "n5"}},
		}},
		{name: "heartbeat slower than the threshold is network evidence", world: func() *world {
			w := newWorld(5).split(3, 2)
			w.group = map[string]int{} // every port and netcheck fine …
			w.rtt["n2"] = 2.5          // … but n2's heartbeats are older than the 2s threshold
			return w
		}(), mutate: func(rs []Result) []Result {
			// control and data as in a 3|2 split.
			for i, r := range rs {
				if r.Node == "n4" || r.Node == "n5" {
					switch d := r.Data.(type) {
					case *zmy.QuorumStatus:
						rs[i].Data = &zmy.QuorumStatus{Node: d.Node, Quorum: zmy.QuorumLost, LeaderID: "n4"}
					case *zmy.NodeMetrics:
						d.Shards["1"] += 9
					}
				}
			}
			return rs
		}, want: want{
			kind: incident.VerdictConfirmed, control: true, data: true, network: true, sop: SOPQuorumDown,
			groups:   [][]string{{"n1", "n2", "n3", "n4", "n5"}},
			reason:   []string{"heartbeat stale: n2→n1 rtt 2.500s > threshold 2s"},
			supports: map[string]incident.Condition{ProbeData: incident.CondNetwork},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := tc.world.results()
			if tc.mutate != nil {
				rs = tc.mutate(rs)
			}
			p := tc.world.params()
			p.ShardTolerance = tc.tol
			v := decide(rs, p, tc.fuse)

			require.Equal(t, tc.want.kind, v.Kind, v.Reason)
			require.Equal(t, map[incident.Condition]bool{incident.CondControl: tc.want.control,
				incident.CondData: tc.want.data, incident.CondNetwork: tc.want.network}, v.Conditions, v.Reason)
			require.Equal(t, tc.want.healthy, v.Healthy)
			require.Equal(t, tc.want.sop, v.SOP)
			require.Equal(t, tc.want.rootCause, v.RootCause)
			require.Equal(t, tc.fuse.Tripped(p.Fuse), v.ClockFuse)
			if tc.want.groups != nil {
				require.Equal(t, tc.want.groups, v.Groups)
			}
			for _, s := range tc.want.reason {
				require.Contains(t, v.Reason, s)
			}
			require.Len(t, v.Evidence, len(rs), "every result is evidence")
			for _, e := range v.Evidence {
				require.NotEmpty(t, e.Supports, "%s/%s says which condition it supports", e.Node, e.Probe)
				require.Equal(t, conditionOf(e.Probe), e.Supports[0])
				if !e.OK {
					require.NotEmpty(t, e.Error, "%s/%s says why it failed", e.Node, e.Probe)
				}
			}
			for probe, cond := range tc.want.supports {
				i := slices.IndexFunc(v.Evidence, func(e incident.Evidence) bool {
					return e.Probe == probe && slices.Contains(e.Supports, cond)
				})
				require.GreaterOrEqual(t, i, 0, "some %s evidence supports %s", probe, cond)
			}
			require.Equal(t, p.At, v.At)
			require.Equal(t, p.Threshold, v.Threshold)
		})
	}
}

func TestDecideEvidenceOrderAndSkips(t *testing.T) {
	w := newWorld(3)
	w.skipped["n2"] = true
	rs := w.results()
	slices.Reverse(rs)
	v := decide(rs, w.params(), FuseState{})
	require.Equal(t, "n1", v.Evidence[0].Node)
	require.Equal(t, ProbeControl, v.Evidence[0].Probe)
	var skipped []string
	for _, e := range v.Evidence {
		if e.Skipped {
			skipped = append(skipped, e.Node+"/"+e.Probe)
			require.False(t, e.OK)
			require.Equal(t, "node breaker open", e.Error)
		}
	}
	require.Len(t, skipped, 6)
	require.False(t, v.Healthy, "a skipped node did not answer")
}

func TestQuantileNearestRank(t *testing.T) {
	require.Equal(t, 0.0, quantile(nil, 0.99))
	require.Equal(t, 2.0, quantile([]float64{3, 1, 2}, 0.5))
	require.Equal(t, 3.0, quantile([]float64{3, 1, 2}, 0.99))
}

func TestFirewalledIsTheSmallestCover(t *testing.T) {
	w := newWorld(6)
	w.firewall["n2"], w.firewall["n5"] = true, true
	fw := firewalled(index(w.results()), w.nodes)
	require.Equal(t, map[string]bool{"n2": true, "n5": true}, fw)
}

// A node whose answers cannot be read is named in the verdict's reason, with why.
func TestDecideNamesTheNodesThatDidNotAnswer(t *testing.T) {
	w := newWorld(5).split(3, 2)
	rs := w.results()
	for i := range rs {
		if rs[i].Node == "n3" && rs[i].Probe == ProbeData {
			rs[i] = Result{Probe: ProbeData, Node: "n3", Status: StatusError, Reason: "malformed /metrics: line 1: bad token"}
		}
	}
	v := decide(rs, w.params(), FuseState{})
	require.Contains(t, v.Reason, "4 of 5 nodes scraped, no answer from n3 (data: malformed /metrics: line 1: bad token)")
	require.Contains(t, v.Reason, "5 of 5 nodes answered", "control: n3 answered")
	require.NotContains(t, v.Reason, "n3 (control")
}
