package zmy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
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

// ParseNetcheck parses `debug netcheck --full` output. The JSON form nodes write takes a
// decoder of its own (netcheck_json.go); anything else goes the common way.
func ParseNetcheck(out string) (*Netcheck, error) {
	if t := strings.TrimSpace(out); len(t) <= MaxParseInput && strings.HasPrefix(t, "{") {
		if n, ok := decodeNetcheckJSON(t); ok {
			return validated(n, validateNetcheck(n))
		}
	}
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
