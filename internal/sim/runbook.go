package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// Errors of quorum recover, mapped to zmyctl's exit codes by the command layer.
var (
	ErrNotConverged     = errors.New("network not converged")
	ErrNoUniqueMajority = errors.New("no unique majority")
)

func (m *model) quorumStatus(i int) zmy.QuorumStatus {
	n := m.nodes[i]
	_, leaderID := m.raftState(i)
	q := zmy.QuorumLost
	if m.quorum(i) {
		q = zmy.QuorumOK
	}
	return zmy.QuorumStatus{Node: n.id, Quorum: q, LeaderID: leaderID, Term: n.term, Members: m.members(i)}
}

func (m *model) state(i int) zmy.RaftState {
	st, leaderID := m.raftState(i)
	n := m.nodes[i]
	out := zmy.RaftState{Node: n.id, RaftState: st, Term: n.term, LeaderID: leaderID, LastRecover: m.lastRecover}
	if n.suspended {
		out.SuspendedBy = n.suspendedBy
	}
	return out
}

// suspend stops node i from accepting proposals. It keeps serving reads and metrics. The
// first suspend names who suspended the node; a repeated one changes nothing.
func (m *model) suspend(i int, actor string) {
	if !m.nodes[i].suspended {
		m.nodes[i].suspendedBy = actor
	}
	m.nodes[i].suspended = true
	if m.episode != nil {
		m.episode.suspendSeen = true
	}
}

// resume lets node i take part in Raft again: it rejoins its component's leader, or leads if
// recovery named it. A resume inside a partition episode before a successful recover is the
// mistake the seed warns about, and is recorded.
func (m *model) resume(i int, now time.Time) {
	n := m.nodes[i]
	if m.episode != nil && !m.episode.recovered {
		m.violate(now, KindResumeBeforeRecover, n.id,
			"raft resume ran before quorum recover succeeded in this partition episode")
	}
	n.suspended = false
	n.suspendReported = false
	n.suspendedBy = ""
	m.step(now)
}

// snapshotSave captures node i's log and shard indexes under tag; a second save with the
// same tag returns the first one.
func (m *model) snapshotSave(i int, tag string, now time.Time) (zmy.Snapshot, bool) {
	n := m.nodes[i]
	s, ok := n.snapshots[tag]
	if !ok {
		s = &snapshot{tag: tag, at: now, log: raftLog{
			entries: slices.Clip(n.log.entries),
			counts:  slices.Clone(n.log.counts),
		}, shards: m.shardMap(n.log.counts)}
		n.snapshots[tag] = s
		n.snapOrder = append(n.snapOrder, tag)
		if m.episode != nil && strings.HasPrefix(tag, SnapshotTagPrefix) {
			m.episode.snapshots[i] = true
		}
	}
	return zmy.Snapshot{Node: n.id, Tag: tag, Created: !ok, Entries: s.log.len(), Shards: s.shards, At: s.at}, !ok
}

func (m *model) snapshotList(i int) []zmy.Snapshot {
	n := m.nodes[i]
	out := make([]zmy.Snapshot, 0, len(n.snapOrder))
	for _, tag := range n.snapOrder {
		s := n.snapshots[tag]
		out = append(out, zmy.Snapshot{Node: n.id, Tag: tag, Entries: s.log.len(), Shards: s.shards, At: s.at})
	}
	return out
}

func (m *model) shardMap(counts []uint64) map[string]uint64 {
	out := make(map[string]uint64, len(counts))
	for s, id := range shardIDs(len(counts)) {
		out[id] = counts[s]
	}
	return out
}

// recover is `quorum recover --auto`: it acts on the whole cluster whichever node received
// it. It refuses unless the network has converged and exactly one group of the last
// partition holds a strict majority; then the majority's most up-to-date log becomes every
// node's log, the minority's divergent entries are discarded, and one majority node leads in
// a new term. Nodes stay suspended: resuming is a separate step.
func (m *model) recover(now time.Time, actor string) (zmy.RecoverResult, error) {
	m.checkRecover(now)
	if m.split() {
		return zmy.RecoverResult{}, fmt.Errorf("%w: groups %s are still cut off from each other",
			ErrNotConverged, m.groupsString(m.networkGroups()))
	}
	groups := m.lastGroups
	if groups == nil {
		groups = [][]int{m.all()}
	}
	var majority []int
	for _, g := range groups {
		if 2*len(g) > len(m.nodes) {
			majority = g
		}
	}
	if majority == nil {
		return zmy.RecoverResult{}, fmt.Errorf("%w: last partition %s has no group with more than %d of %d nodes",
			ErrNoUniqueMajority, m.groupsString(groups), len(m.nodes)/2, len(m.nodes))
	}

	if m.episode != nil && m.episode.recovered {
		prev := m.lastRecover
		m.violate(now, KindRepeatedRecover, m.nodes[majority[0]].id, fmt.Sprintf(
			"a second quorum recover in this partition episode (the first: term %d at %s by %q)",
			prev.Term, prev.At.UTC().Format(time.RFC3339Nano), prev.Actor))
	}
	lead := majority[0]
	var term uint64
	for _, i := range majority {
		if betterLeader(m.nodes[i], m.nodes[lead]) {
			lead = i
		}
	}
	for _, n := range m.nodes {
		term = max(term, n.term)
	}
	term++
	auth := m.nodes[lead].log
	auth.entries = slices.Clip(auth.entries)
	auth.counts = slices.Clone(auth.counts)

	discarded := map[uint64]bool{}
	for _, n := range m.nodes {
		p := commonPrefix(n.log.entries, auth.entries)
		unsnapped := 0
		for q := p; q < n.log.len(); q++ {
			e := n.log.entries[q]
			discarded[e.id] = true
			if !snapshotHolds(n, q, e.id) {
				unsnapped++
			}
		}
		if unsnapped > 0 {
			m.violate(now, KindDiscardedUnsnapshotted, n.id, fmt.Sprintf(
				"recovery discarded %d entries (from index %d) that no snapshot of this node holds",
				unsnapped, p+1))
		}
		n.log.adopt(&auth)
		n.term = term
		n.leader = lead
	}
	m.nodes[lead].log.owned = false // shared with every follower: clip before appending
	if m.episode != nil {
		m.episode.recovered = true
	}
	m.step(now)
	res := zmy.RecoverResult{
		Majority:  slicesMap(majority, func(i int) string { return m.nodes[i].id }),
		Leader:    m.nodes[lead].id,
		Term:      term,
		Discarded: len(discarded),
	}
	m.lastRecover = &zmy.LastRecover{RecoverResult: res, At: now, Actor: actor}
	return res, nil
}

func (m *model) all() []int {
	out := make([]int, len(m.nodes))
	for i := range out {
		out[i] = i
	}
	return out
}

// netcheck is `debug netcheck --full` on node i: reachability of every peer's port, the
// heartbeat RTT of reachable peers, whether a firewall rule explains an unreachable one, and
// the partition score (score.go).
func (m *model) netcheck(i int, peerAddrs []string) zmy.Netcheck {
	out := zmy.Netcheck{Node: m.nodes[i].id, Peers: []zmy.PeerCheck{}, PartitionScore: m.partitionScore(i)}
	for j, p := range m.nodes {
		if j == i {
			continue
		}
		pc := zmy.PeerCheck{Peer: p.id, Addr: peerAddrs[j], FirewallBlocked: m.nodes[i].firewall || p.firewall}
		if m.connected(i, j) {
			pc.Reachable = true
			pc.RTTMillis = heartbeatRTT().Seconds() * 1000
		}
		out.Peers = append(out.Peers, pc)
	}
	return out
}

// heartbeatRTT is a loopback-like round trip: 0.5–3ms with jitter.
func heartbeatRTT() time.Duration {
	return 500*time.Microsecond + rand.N(2500*time.Microsecond)
}

func slicesMap[T, U any](in []T, f func(T) U) []U {
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}
