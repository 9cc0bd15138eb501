package sim

import (
	"fmt"
	"strconv"
	"time"

	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// nodeState is one node of the model. Every field is guarded by the cluster's mutex.
type nodeState struct {
	id  string
	idx int

	killed    bool
	suspended bool
	// suspendReported is set once an answer told a caller the node is suspended; a write the
	// node accepts from then until it resumes is a write_after_suspend violation.
	suspendReported bool
	// suspendedBy is the actor (ZMY_ACTOR) of the suspend that suspended the node.
	suspendedBy string
	firewall    bool

	term   uint64
	leader int // index of the leader this node follows (itself when leading); -1 for none
	log    raftLog

	snapshots map[string]*snapshot
	snapOrder []string

	skew    time.Duration // clock offset added to real time
	ctlMode string        // ctlOK, ctlFail, ctlHang
	slow    time.Duration // delay before every admin answer (of slowCmd's command only, if set)
	slowCmd string        // command words the delay applies to, e.g. "snapshot save"; "" for all
	// inFlight lists the admin commands received and not answered yet, by their words.
	inFlight []string

	accepted, rejected uint64
	// overwritten counts this node's entries lost because it took another leader's log
	// without a quorum recover (the flawed cluster merging on its own after a heal).
	overwritten uint64
}

type snapshot struct {
	tag    string
	at     time.Time
	log    raftLog
	shards map[string]uint64
}

// model is the whole cluster's state machine. It does no I/O; the caller holds the lock.
type model struct {
	shards        int
	electionDelay time.Duration
	nodes         []*nodeState

	// Topology: partition groups (by index), recomputed connected components.
	groupOf    []int
	groupCount int
	comps      [][]int
	compOf     []int // -1 for killed nodes
	compKeys   []string

	electionDue map[string]time.Time // component key -> when its election happens
	nextID      uint64
	writeCursor int

	// lastGroups is the most recent split of the network into groups, kept through heal so
	// that quorum recover can arbitrate after the network converged.
	lastGroups [][]int
	// lastRecover is the cluster's latest successful quorum recover, as every node reports it.
	lastRecover *zmy.LastRecover
	episode     *episode
	episodes    int

	violations []Violation
}

func newModel(n, shards int, electionDelay time.Duration, now time.Time) *model {
	m := &model{
		shards:        shards,
		electionDelay: electionDelay,
		groupOf:       make([]int, n),
		groupCount:    1,
		electionDue:   map[string]time.Time{},
	}
	for i := range n {
		m.nodes = append(m.nodes, &nodeState{
			id:        "n" + strconv.Itoa(i+1),
			idx:       i,
			leader:    0,
			term:      1,
			log:       newRaftLog(shards),
			snapshots: map[string]*snapshot{},
			ctlMode:   ctlOK,
		})
	}
	m.recomputeTopology(now)
	return m
}

// nodeIndex resolves "n3" to its index.
func (m *model) nodeIndex(id string) (int, error) {
	for i, n := range m.nodes {
		if n.id == id {
			return i, nil
		}
	}
	return -1, fmt.Errorf("unknown node %q (nodes are n1…n%d)", id, len(m.nodes))
}

func (m *model) active(i int) bool { return !m.nodes[i].killed && !m.nodes[i].suspended }

// quorum reports whether node i's component holds a strict majority of the cluster.
func (m *model) quorum(i int) bool {
	c := m.compOf[i]
	return c >= 0 && 2*len(m.comps[c]) > len(m.nodes)
}

// activeLeader returns the leader the active members of component c follow, or -1. After a
// heal a component may hold several self-elected leaders; the most up-to-date one wins, as
// in Raft, and the others will step down in step.
func (m *model) activeLeader(c int) int {
	best := -1
	for _, i := range m.comps[c] {
		n := m.nodes[i]
		if !m.active(i) || n.leader != i {
			continue
		}
		if best < 0 || betterLeader(n, m.nodes[best]) {
			best = i
		}
	}
	return best
}

func betterLeader(a, b *nodeState) bool {
	if a.log.lastTerm() != b.log.lastTerm() || a.log.len() != b.log.len() {
		return upToDate(&a.log, &b.log)
	}
	if a.term != b.term {
		return a.term > b.term
	}
	return a.idx < b.idx
}

// step advances elections and replication to now: every component with an active leader
// brings its active members onto the leader's term and log; a component without one elects
// its most up-to-date active member once its election delay has passed, whether or not it
// holds a majority (the flaw of the seed's cluster).
func (m *model) step(now time.Time) {
	live := map[string]bool{}
	for c, members := range m.comps {
		key := m.compKeys[c]
		live[key] = true
		l := m.activeLeader(c)
		if l < 0 {
			l = m.elect(c, key, now)
		}
		if l < 0 {
			continue
		}
		delete(m.electionDue, key)
		for _, i := range members {
			if i != l && m.active(i) {
				m.follow(i, l)
			}
		}
	}
	for key := range m.electionDue {
		if !live[key] {
			delete(m.electionDue, key)
		}
	}
	m.maybeCloseEpisode()
}

// elect runs component c's election if it is due, returning the new leader or -1.
func (m *model) elect(c int, key string, now time.Time) int {
	cand := -1
	var term uint64
	for _, i := range m.comps[c] {
		term = max(term, m.nodes[i].term)
		if m.active(i) && (cand < 0 || betterLeader(m.nodes[i], m.nodes[cand])) {
			cand = i
		}
	}
	if cand < 0 {
		return -1 // every member is suspended: nobody campaigns
	}
	due, ok := m.electionDue[key]
	if !ok {
		m.electionDue[key] = now.Add(m.electionDelay)
		return -1
	}
	if now.Before(due) {
		return -1
	}
	n := m.nodes[cand]
	n.term = term + 1
	n.leader = cand
	return cand
}

// follow makes node i follow leader l: its term, leader and log become the leader's.
func (m *model) follow(i, l int) {
	n, leader := m.nodes[i], m.nodes[l]
	n.term = leader.term
	n.leader = l
	n.overwritten += uint64(n.log.adopt(&leader.log))
}

// write routes one client write: clients are spread over the live nodes round-robin; a node
// forwards to its component's leader. A suspended node, or one whose group has no leader
// yet, rejects it.
func (m *model) write(now time.Time) {
	for range m.nodes { // every node killed: the write has nowhere to go
		n := m.nodes[m.writeCursor]
		m.writeCursor = (m.writeCursor + 1) % len(m.nodes)
		if n.killed {
			continue
		}
		if n.suspended {
			n.rejected++
			return
		}
		l := m.activeLeader(m.compOf[n.idx])
		if l < 0 {
			n.rejected++
			return
		}
		m.accept(l, now)
		for _, i := range m.comps[m.compOf[l]] {
			if i != l && m.active(i) {
				m.follow(i, l)
			}
		}
		return
	}
}

// accept appends a new entry at node l as its leader would, checking write_after_suspend.
func (m *model) accept(l int, now time.Time) {
	n := m.nodes[l]
	m.nextID++
	n.log.append(entry{
		id:     m.nextID,
		term:   n.term,
		shard:  uint16((m.nextID - 1) % uint64(m.shards)),
		origin: uint16(l),
	})
	n.accepted++
	if n.suspendReported {
		m.violate(now, KindWriteAfterSuspend, n.id, fmt.Sprintf(
			"node accepted write %d (term %d, index %d) after reporting suspended",
			m.nextID, n.term, n.log.len()))
	}
}

// raftState is what `raft state` reports for node i.
func (m *model) raftState(i int) (state string, leaderID string) {
	n := m.nodes[i]
	if n.leader >= 0 {
		leaderID = m.nodes[n.leader].id
	}
	switch {
	case n.suspended:
		return "suspended", leaderID
	case n.leader == i:
		return "leader", leaderID
	case n.leader >= 0 && m.connected(i, n.leader) && m.active(n.leader):
		return "follower", leaderID
	case m.compOf[i] < 0 || m.electionDue[m.compKeys[m.compOf[i]]].IsZero():
		return "follower", leaderID
	default:
		// The leader is gone and an election is pending: the node campaigns.
		return "candidate", leaderID
	}
}

// members returns the ids of the nodes node i can reach, itself included.
func (m *model) members(i int) []string {
	c := m.compOf[i]
	if c < 0 {
		return nil
	}
	ids := make([]string, 0, len(m.comps[c]))
	for _, j := range m.comps[c] {
		ids = append(ids, m.nodes[j].id)
	}
	return ids
}
