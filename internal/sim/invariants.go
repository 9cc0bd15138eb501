package sim

import (
	"strings"
	"time"
)

// Violation kinds: stable strings tests and the demo match on.
const (
	// KindWriteAfterSuspend: a node accepted a write after it reported suspended, before it
	// was resumed.
	KindWriteAfterSuspend = "write_after_suspend"
	// KindResumeBeforeRecover: a resume during a partition episode before a successful
	// quorum recover in that episode.
	KindResumeBeforeRecover = "resume_before_recover"
	// KindRecoverBeforeSnapshot: a quorum recover while some node had no pre-recover-*
	// snapshot taken in this episode.
	KindRecoverBeforeSnapshot = "recover_before_snapshot"
	// KindRecoverWhileWritable: a quorum recover while some live node was not suspended.
	KindRecoverWhileWritable = "recover_while_writable"
	// KindRepeatedRecover: a second successful quorum recover in one partition episode (a
	// responder that did not know its first one landed).
	KindRepeatedRecover = "repeated_recover"
	// KindDiscardedUnsnapshotted: recovery discarded entries of a node that no snapshot of
	// that node holds.
	KindDiscardedUnsnapshotted = "discarded_entry_unsnapshotted"
)

// SnapshotTagPrefix is the tag prefix of the snapshots the SOP takes before recovery.
const SnapshotTagPrefix = "pre-recover-"

// Violation is one broken invariant: something a correct runbook never causes. The
// simulator executes the wrong command anyway, as a real cluster would, and records it.
type Violation struct {
	Kind    string    `json:"kind"`
	Node    string    `json:"node,omitempty"`
	Time    time.Time `json:"time"`
	Episode int       `json:"episode,omitempty"`
	Detail  string    `json:"detail"`
}

// episode is one partition incident as the cluster lives it: it starts when the network
// splits and ends when the cluster is whole again and nothing is suspended — after
// recover+resume, or at once if nobody contained it (the flawed cluster merged on its own).
type episode struct {
	id          int
	started     time.Time
	recovered   bool         // a quorum recover succeeded in this episode
	suspendSeen bool         // some node was suspended during it
	snapshots   map[int]bool // node index -> took a pre-recover-* snapshot in this episode
}

func (m *model) violate(now time.Time, kind, node, detail string) {
	v := Violation{Kind: kind, Node: node, Time: now, Detail: detail}
	if m.episode != nil {
		v.Episode = m.episode.id
	}
	m.violations = append(m.violations, v)
}

func (m *model) maybeCloseEpisode() {
	ep := m.episode
	if ep == nil || m.split() {
		return
	}
	for _, n := range m.nodes {
		if n.suspended {
			return
		}
	}
	if ep.recovered || !ep.suspendSeen {
		m.episode = nil
	}
}

// checkRecover records the violations a quorum recover is about to commit: partial
// containment and missing pre-recover snapshots.
func (m *model) checkRecover(now time.Time) {
	var writable, unsnapped []string
	for i, n := range m.nodes {
		if !n.killed && !n.suspended {
			writable = append(writable, n.id)
		}
		if m.episode != nil && !m.episode.snapshots[i] {
			unsnapped = append(unsnapped, n.id)
		}
	}
	for _, id := range writable {
		m.violate(now, KindRecoverWhileWritable, id,
			"quorum recover ran while this node was not suspended (writable: "+strings.Join(writable, ",")+")")
	}
	for _, id := range unsnapped {
		m.violate(now, KindRecoverBeforeSnapshot, id,
			"quorum recover ran before this node held a "+SnapshotTagPrefix+"* snapshot taken in this episode")
	}
}

// snapshotHolds reports whether some snapshot of node n holds the entry at position p of
// its log (same id at the same position).
func snapshotHolds(n *nodeState, p int, id uint64) bool {
	for _, s := range n.snapshots {
		if p < len(s.log.entries) && s.log.entries[p].id == id {
			return true
		}
	}
	return false
}
