package zmy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The parsers turn zmyctl output into the contract types. Each Parse* accepts both forms: JSON
// when the output starts with '{' or '[', the text form of contract.go otherwise, because a real
// zmyctl may ignore `-o json`. Every failure wraps ErrMalformed; none panics (see FuzzParsers).

// MaxParseInput bounds what the parsers accept, whatever the driver's MaxOutput.
const MaxParseInput = 16 << 20

// ParseStatus parses `status --quorum` output.
func ParseStatus(out string) (*QuorumStatus, error) {
	return parseEither(out, ParseStatusText, validateStatus)
}

// ParseRaftState parses `raft state`, `raft suspend --force` and `raft resume` output.
func ParseRaftState(out string) (*RaftState, error) {
	return parseEither(out, ParseRaftStateText, validateRaftState)
}

// ParseSnapshot parses `snapshot save --tag T` output.
func ParseSnapshot(out string) (*Snapshot, error) {
	return parseEither(out, ParseSnapshotText, validateSnapshot)
}

// ParseSnapshotList parses `snapshot list` output. No snapshots is empty text output, or JSON
// `[]` or `null` (a nil Go slice).
func ParseSnapshotList(out string) ([]Snapshot, error) {
	if t := strings.TrimSpace(out); t == "" || t == "null" {
		return []Snapshot{}, nil
	}
	list, err := parseEither(out, func(s string) (*[]Snapshot, error) {
		l, err := ParseSnapshotListText(s)
		return &l, err
	}, func(l *[]Snapshot) error {
		for i := range *l {
			if err := validateSnapshot(&(*l)[i]); err != nil {
				return fmt.Errorf("snapshot %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if *list == nil {
		return []Snapshot{}, nil
	}
	return *list, nil
}

// ParseRecover parses `quorum recover --auto` output.
func ParseRecover(out string) (*RecoverResult, error) {
	return parseEither(out, ParseRecoverText, validateRecover)
}

// ParseNetcheck parses `debug netcheck --full` output.
func ParseNetcheck(out string) (*Netcheck, error) {
	return parseEither(out, ParseNetcheckText, validateNetcheck)
}

// parseEither sniffs the form, parses, and validates what JSON produced (the text parsers
// validate as they go, since they know which keys were present).
func parseEither[T any](out string, text func(string) (*T, error), validate func(*T) error) (*T, error) {
	if len(out) > MaxParseInput {
		return nil, fmt.Errorf("%w: output of %d bytes exceeds %d", ErrMalformed, len(out), MaxParseInput)
	}
	trimmed := strings.TrimSpace(out)
	if trimmed == "" {
		return nil, fmt.Errorf("%w: empty output", ErrMalformed)
	}
	if trimmed[0] != '{' && trimmed[0] != '[' {
		v, err := text(trimmed)
		if err != nil {
			return nil, err
		}
		return v, nil
	}
	v := new(T)
	dec := json.NewDecoder(strings.NewReader(trimmed))
	if err := dec.Decode(v); err != nil {
		return nil, fmt.Errorf("%w: decode JSON: %w", ErrMalformed, err)
	}
	if dec.More() || dec.InputOffset() != int64(len(trimmed)) {
		return nil, fmt.Errorf("%w: trailing data after JSON at offset %d", ErrMalformed, dec.InputOffset())
	}
	if err := validate(v); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return v, nil
}

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

func validateStatus(s *QuorumStatus) error {
	if s.Quorum != QuorumOK && s.Quorum != QuorumLost {
		return fmt.Errorf("status: quorum %q is neither %s nor %s", excerpt(s.Quorum), QuorumOK, QuorumLost)
	}
	return nil
}

func validateRaftState(s *RaftState) error {
	switch s.RaftState {
	case StateLeader, StateFollower, StateCandidate, StateSuspended:
		return nil
	}
	return fmt.Errorf("raft state: raft_state %q is not one of leader, follower, candidate, suspended", excerpt(s.RaftState))
}

func validateSnapshot(s *Snapshot) error {
	if s.Tag == "" {
		return errors.New("snapshot: no tag")
	}
	if s.Entries < 0 {
		return fmt.Errorf("snapshot %s: negative entries %d", s.Tag, s.Entries)
	}
	return nil
}

// validateRecover is strict because remediation resumes the cluster on the strength of it.
func validateRecover(r *RecoverResult) error {
	if len(r.Majority) == 0 {
		return errors.New("quorum recover: empty majority")
	}
	seen := make(map[string]bool, len(r.Majority))
	for _, id := range r.Majority {
		if id == "" || seen[id] {
			return fmt.Errorf("quorum recover: bad majority member %q in %v", excerpt(id), r.Majority)
		}
		seen[id] = true
	}
	if r.Leader != "" && !seen[r.Leader] {
		return fmt.Errorf("quorum recover: leader %q is not in the majority %v", excerpt(r.Leader), r.Majority)
	}
	if r.Discarded < 0 {
		return fmt.Errorf("quorum recover: negative discarded %d", r.Discarded)
	}
	return nil
}

func validateNetcheck(n *Netcheck) error {
	if math.IsNaN(n.PartitionScore) || n.PartitionScore < 0 || n.PartitionScore > 1 {
		return fmt.Errorf("netcheck: partition_score %v outside [0,1]", n.PartitionScore)
	}
	for _, p := range n.Peers {
		if p.Peer == "" {
			return errors.New("netcheck: peer without id")
		}
		if math.IsNaN(p.RTTMillis) || math.IsInf(p.RTTMillis, 0) || p.RTTMillis < 0 {
			return fmt.Errorf("netcheck: peer %s: bad rtt_ms %v", excerpt(p.Peer), p.RTTMillis)
		}
	}
	return nil
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

// validated returns v, or nil and the validation error as ErrMalformed.
func validated[T any](v *T, err error) (*T, error) {
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return v, nil
}

// excerpt caps untrusted text quoted in error messages.
func excerpt(s string) string {
	const max = 80
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
