package sim

import (
	"slices"
	"strconv"
)

// entry is one accepted write. Its Raft index is its position in a log plus one. Entry ids are
// unique across the cluster, so two logs holding the same id at the same position agree on
// everything before it (Raft's log matching property, which the model preserves: logs are only
// extended by their owner, copied whole, or truncated).
type entry struct {
	id     uint64
	term   uint64
	shard  uint16
	origin uint16 // index of the node that accepted the write
}

// raftLog is a node's log plus the per-shard count of its entries (the shard's last applied
// index, since every entry is applied as soon as it is replicated). Followers share their
// leader's backing array; owned says whether this node may append in place.
type raftLog struct {
	entries []entry
	counts  []uint64
	owned   bool
}

func newRaftLog(shards int) raftLog {
	return raftLog{counts: make([]uint64, shards), owned: true}
}

func (l *raftLog) len() int { return len(l.entries) }

func (l *raftLog) lastTerm() uint64 {
	if len(l.entries) == 0 {
		return 0
	}
	return l.entries[len(l.entries)-1].term
}

// append adds e. A log that shares its backing array is clipped first so the append copies:
// otherwise two leaders of a split cluster would write into the same array slot.
func (l *raftLog) append(e entry) {
	if !l.owned {
		l.entries = slices.Clip(l.entries)
		l.owned = true
	}
	l.entries = append(l.entries, e)
	l.counts[e.shard]++
}

// adopt makes l a copy of src (sharing its array) and returns how many of l's entries were
// not in src: the divergent entries a follower loses when it takes its leader's log.
func (l *raftLog) adopt(src *raftLog) int {
	if len(l.entries) == len(src.entries) && l.samePrefix(src, len(l.entries)) {
		return 0
	}
	p := commonPrefix(l.entries, src.entries)
	lost := len(l.entries) - p
	l.entries = src.entries
	l.owned = false
	copy(l.counts, src.counts)
	return lost
}

func (l *raftLog) samePrefix(src *raftLog, n int) bool {
	if n == 0 {
		return true
	}
	return n <= len(src.entries) && src.entries[n-1].id == l.entries[n-1].id
}

// commonPrefix is the length of the longest common prefix of a and b. By the log matching
// property, position i agrees iff every position before it does, so a binary search suffices.
func commonPrefix(a, b []entry) int {
	n := min(len(a), len(b))
	lo, hi := 0, n // invariant: positions < lo agree; positions >= hi differ
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if a[mid].id == b[mid].id {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// shardIDs returns the shard label values "1".."n", as the seed numbers shards from 1.
func shardIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(i + 1)
	}
	return ids
}

// upToDate reports whether log a is at least as up to date as log b (Raft's election rule:
// later last term wins, then the longer log).
func upToDate(a, b *raftLog) bool {
	if a.lastTerm() != b.lastTerm() {
		return a.lastTerm() > b.lastTerm()
	}
	return a.len() >= b.len()
}
