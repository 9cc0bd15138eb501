package zmy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The text forms of zmyctl's output, as contract.go documents them: a line is an optional
// leading word and key=value tokens; unknown keys are ignored so a newer zmyctl still parses.

// ParseStatusText parses "QUORUM_OK leader_id=n1 term=7 node=n1".
func ParseStatusText(out string) (*QuorumStatus, error) {
	l, err := singleLine(out)
	if err != nil {
		return nil, err
	}
	s := &QuorumStatus{Quorum: l.word, LeaderID: l.kv["leader_id"], Node: l.kv["node"]}
	if s.Term, err = l.uint("term", false); err != nil {
		return nil, err
	}
	if m, ok := l.kv["members"]; ok && m != "" {
		s.Members = strings.Split(m, ",")
	}
	return validated(s, validateStatus(s))
}

// ParseRaftStateText parses the three text forms of a node's raft state:
// "raft_state=leader term=7 leader_id=n1 node=n1" (raft state),
// "suspended node=n1" (raft suspend) and "resumed node=n1 raft_state=follower" (raft resume).
func ParseRaftStateText(out string) (*RaftState, error) {
	l, err := singleLine(out)
	if err != nil {
		return nil, err
	}
	s := &RaftState{Node: l.kv["node"], RaftState: l.kv["raft_state"], LeaderID: l.kv["leader_id"]}
	switch l.word {
	case "":
	case "suspended":
		if s.RaftState == "" {
			s.RaftState = StateSuspended
		}
	case "resumed":
	default:
		return nil, fmt.Errorf("%w: unexpected word %q in raft state", ErrMalformed, l.word)
	}
	if s.Term, err = l.uint("term", false); err != nil {
		return nil, err
	}
	return validated(s, validateRaftState(s))
}

// ParseSnapshotText parses "snapshot tag=T node=n1 created=true entries=123".
func ParseSnapshotText(out string) (*Snapshot, error) {
	l, err := singleLine(out)
	if err != nil {
		return nil, err
	}
	if l.word != "snapshot" {
		return nil, fmt.Errorf("%w: snapshot save: want \"snapshot tag=…\", got %q", ErrMalformed, excerpt(out))
	}
	return snapshotFromLine(l)
}

// ParseSnapshotListText parses one "tag=T node=n1 entries=123 at=<RFC3339>" line per snapshot;
// empty output is an empty list.
func ParseSnapshotListText(out string) ([]Snapshot, error) {
	list := []Snapshot{}
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		l, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		if l.word != "" && l.word != "snapshot" {
			return nil, fmt.Errorf("%w: line %d: unexpected word %q", ErrMalformed, i+1, l.word)
		}
		s, err := snapshotFromLine(l)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		list = append(list, *s)
	}
	return list, nil
}

func snapshotFromLine(l line) (*Snapshot, error) {
	s := &Snapshot{Tag: l.kv["tag"], Node: l.kv["node"]}
	if v, ok := l.kv["created"]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("%w: created=%q: %w", ErrMalformed, v, err)
		}
		s.Created = b
	}
	n, err := l.uint("entries", false)
	if err != nil {
		return nil, err
	}
	if n > math.MaxInt32 {
		return nil, fmt.Errorf("%w: entries=%d out of range", ErrMalformed, n)
	}
	s.Entries = int(n)
	if v, ok := l.kv["at"]; ok {
		if s.At, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return nil, fmt.Errorf("%w: at=%q: %w", ErrMalformed, v, err)
		}
	}
	return validated(s, validateSnapshot(s))
}

// ParseRecoverText parses "recovered majority=n1,n2,n3 leader=n1 term=9 discarded=42".
func ParseRecoverText(out string) (*RecoverResult, error) {
	l, err := singleLine(out)
	if err != nil {
		return nil, err
	}
	if l.word != "recovered" {
		return nil, fmt.Errorf("%w: quorum recover: want \"recovered majority=…\", got %q", ErrMalformed, excerpt(out))
	}
	r := &RecoverResult{Leader: l.kv["leader"]}
	if m := l.kv["majority"]; m != "" {
		r.Majority = strings.Split(m, ",")
	}
	if r.Term, err = l.uint("term", false); err != nil {
		return nil, err
	}
	d, err := l.uint("discarded", false)
	if err != nil {
		return nil, err
	}
	if d > math.MaxInt32 {
		return nil, fmt.Errorf("%w: discarded=%d out of range", ErrMalformed, d)
	}
	r.Discarded = int(d)
	return validated(r, validateRecover(r))
}

// ParseNetcheckText parses one "peer=n2 addr=… reachable=true rtt_ms=0.4 firewall_blocked=false"
// line per peer, then "partition_score=0.00 node=n1".
func ParseNetcheckText(out string) (*Netcheck, error) {
	n := &Netcheck{Peers: []PeerCheck{}}
	scored := false
	for i, raw := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.TrimSpace(raw) == "" {
			continue
		}
		l, err := parseLine(raw)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		if l.word != "" {
			return nil, fmt.Errorf("%w: netcheck line %d: unexpected word %q", ErrMalformed, i+1, l.word)
		}
		if v, ok := l.kv["partition_score"]; ok {
			if scored {
				return nil, fmt.Errorf("%w: netcheck: partition_score given twice", ErrMalformed)
			}
			scored = true
			if n.PartitionScore, err = strconv.ParseFloat(v, 64); err != nil {
				return nil, fmt.Errorf("%w: partition_score=%q: %w", ErrMalformed, v, err)
			}
			n.Node = l.kv["node"]
			continue
		}
		p := PeerCheck{Peer: l.kv["peer"], Addr: l.kv["addr"]}
		if p.Reachable, err = l.bool("reachable"); err != nil {
			return nil, err
		}
		if p.FirewallBlocked, err = l.bool("firewall_blocked"); err != nil {
			return nil, err
		}
		if v, ok := l.kv["rtt_ms"]; ok && v != "" {
			if p.RTTMillis, err = strconv.ParseFloat(v, 64); err != nil {
				return nil, fmt.Errorf("%w: rtt_ms=%q: %w", ErrMalformed, v, err)
			}
		}
		n.Peers = append(n.Peers, p)
	}
	if !scored {
		return nil, fmt.Errorf("%w: netcheck: no partition_score line", ErrMalformed)
	}
	return validated(n, validateNetcheck(n))
}

// line is one text line: an optional leading bare word, then key=value tokens.
type line struct {
	word string
	kv   map[string]string
}

func singleLine(out string) (line, error) {
	out = strings.TrimSpace(out)
	if strings.Contains(out, "\n") {
		return line{}, fmt.Errorf("%w: want one line, got %q", ErrMalformed, excerpt(out))
	}
	return parseLine(out)
}

func parseLine(s string) (line, error) {
	l := line{kv: map[string]string{}}
	for i, tok := range strings.Fields(s) {
		k, v, ok := strings.Cut(tok, "=")
		if !ok {
			if i != 0 {
				return line{}, fmt.Errorf("%w: bare word %q after key=value pairs in %q", ErrMalformed, excerpt(tok), excerpt(s))
			}
			l.word = tok
			continue
		}
		if k == "" {
			return line{}, fmt.Errorf("%w: empty key in %q", ErrMalformed, excerpt(s))
		}
		l.kv[k] = v
	}
	return l, nil
}

func (l line) uint(key string, required bool) (uint64, error) {
	v, ok := l.kv[key]
	if !ok || v == "" {
		if required {
			return 0, fmt.Errorf("%w: missing %s", ErrMalformed, key)
		}
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s=%q: %w", ErrMalformed, key, excerpt(v), err)
	}
	return n, nil
}

func (l line) bool(key string) (bool, error) {
	v, ok := l.kv[key]
	if !ok {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%w: %s=%q: %w", ErrMalformed, key, excerpt(v), err)
	}
	return b, nil
}
