package incident

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Page sizes of Journal.Page: a page is bounded so that listing a journal of any size costs the
// same memory.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 100
)

// ErrInvalidQuery says a page query's state, limit or cursor is not one Page accepts (400).
var ErrInvalidQuery = errors.New("invalid query")

// StateFilter selects incidents by whether they are open.
type StateFilter string

const (
	StateAll    StateFilter = "all"
	StateOpen   StateFilter = "open"
	StateClosed StateFilter = "closed"
)

// ParseStateFilter reads the API's state parameter; "" means all.
func ParseStateFilter(s string) (StateFilter, error) {
	switch f := StateFilter(s); f {
	case "":
		return StateAll, nil
	case StateAll, StateOpen, StateClosed:
		return f, nil
	}
	return "", fmt.Errorf("%w: state %q: want open, closed or all", ErrInvalidQuery, s)
}

// Summary is an incident as a list shows it: what it is, where it stands and how it ended,
// without its alerts, evidence, plan, timeline or commands (Get has those). Its JSON names are
// the Incident's, so a summary decodes into an Incident with those fields set.
type Summary struct {
	ID           string      `json:"id"`
	Cluster      string      `json:"cluster"`
	Alertname    string      `json:"alertname"`
	Step         Step        `json:"step"`
	StepDeadline *time.Time  `json:"step_deadline,omitempty"` // when the current step runs out of time
	Outcome      Outcome     `json:"outcome,omitempty"`
	Reason       string      `json:"reason,omitempty"`
	VerdictKind  VerdictKind `json:"verdict_kind,omitempty"` // the verdict's kind, once there is one
	OpenedAt     time.Time   `json:"opened_at"`
	UpdatedAt    time.Time   `json:"updated_at"`
	ClosedAt     *time.Time  `json:"closed_at,omitempty"`
	ResolvedAt   *time.Time  `json:"resolved_at,omitempty"`
	ContainedAt  *time.Time  `json:"contained_at,omitempty"`
	RetriedBy    string      `json:"retried_by,omitempty"` // the incident that re-evaluates this one
}

// Open reports whether the incident is not yet closed.
func (s *Summary) Open() bool { return s.Step != StepClosed }

// PageQuery selects one page of incidents, newest first.
type PageQuery struct {
	State   StateFilter // "" is StateAll
	Cluster string      // "" is every cluster
	Limit   int         // 1…MaxPageLimit; 0 is DefaultPageLimit
	Cursor  string      // Page.Next of the previous page; "" starts at the newest
}

// resolve checks the query: its state filter, its limit (0: the default) and the sequence its
// cursor starts before (0: from the newest).
func (q PageQuery) resolve() (state StateFilter, limit int, before uint64, err error) {
	if state, err = ParseStateFilter(string(q.State)); err != nil {
		return "", 0, 0, err
	}
	limit = q.Limit
	switch {
	case limit == 0:
		limit = DefaultPageLimit
	case limit < 0 || limit > MaxPageLimit:
		return "", 0, 0, fmt.Errorf("%w: limit %d: want 1 to %d", ErrInvalidQuery, q.Limit, MaxPageLimit)
	}
	if q.Cursor != "" {
		if before, err = ParseID(q.Cursor); err != nil {
			return "", 0, 0, fmt.Errorf("%w: cursor %q is not one a previous page returned", ErrInvalidQuery, q.Cursor)
		}
	}
	return state, limit, before, nil
}

// keep reports whether a summary matches the query's state and cluster.
func (q PageQuery) keep(state StateFilter, s Summary) bool {
	return !(state == StateOpen && !s.Open()) && !(state == StateClosed && s.Open()) &&
		(q.Cluster == "" || s.Cluster == q.Cluster)
}

// Page is one page of summaries. Next is the cursor of the following page, "" on the last one.
type Page struct {
	Incidents []Summary
	Next      string
}

// Page returns at most q.Limit summaries, newest first, matching q, starting after q.Cursor.
// Memory is bounded by the page, whatever the journal's size: records are read one at a time,
// and only their summary fields are decoded (decodeSummary). Unlike List it never loads alerts.
func (j *Journal) Page(ctx context.Context, q PageQuery) (*Page, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	state, limit, before, err := q.resolve()
	if err != nil {
		return nil, err
	}
	// A cheap test on the raw record before decoding it: the encoded cluster field.
	var clusterField []byte
	if q.Cluster != "" {
		name, _ := json.Marshal(q.Cluster)
		clusterField = append(append([]byte(`"cluster":`), name...), ',')
	}
	page := &Page{Incidents: make([]Summary, 0, min(limit, 16))}
	err = j.db.View(func(tx *bolt.Tx) error {
		incs, metas := tx.Bucket(bucketIncidents), tx.Bucket(bucketMeta)
		next := newestFirst(incs, before)
		if state == StateOpen {
			// The open index holds one entry per open incident: no need to walk the closed ones.
			var err error
			if next, err = openNewestFirst(tx, incs, before); err != nil {
				return err
			}
		}
		for n := 0; ; n++ {
			k, v := next()
			if k == nil {
				return nil
			}
			if n%1024 == 1023 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			seq := binary.BigEndian.Uint64(k)
			if state == StateClosed {
				if m, ok := storedMeta(metas.Get(k)); ok && m&metaOpen != 0 {
					continue
				}
			}
			if clusterField != nil && !bytes.Contains(v, clusterField) {
				continue
			}
			s, err := decodeSummary(v)
			if err != nil {
				return fmt.Errorf("decode incident %s: %w", FormatID(seq), err)
			}
			if !q.keep(state, s) {
				continue
			}
			if len(page.Incidents) == limit {
				// One more matches: there is a next page, and it starts after the last one kept.
				page.Next = page.Incidents[limit-1].ID
				return nil
			}
			page.Incidents = append(page.Incidents, s)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	return page, nil
}

// newestFirst walks the incidents from the one just older than before (0: the newest) back.
func newestFirst(incs *bolt.Bucket, before uint64) func() (k, v []byte) {
	c := incs.Cursor()
	started := false
	return func() ([]byte, []byte) {
		if started {
			return c.Prev()
		}
		started = true
		if before == 0 {
			return c.Last()
		}
		// Seek lands on the cursor's own record or the next one; either way step back once.
		if k, _ := c.Seek(seqKey(before)); k == nil {
			return c.Last()
		}
		return c.Prev()
	}
}

// openNewestFirst walks the open incidents older than before (0: all), newest first.
func openNewestFirst(tx *bolt.Tx, incs *bolt.Bucket, before uint64) (func() (k, v []byte), error) {
	var seqs []uint64
	err := tx.Bucket(bucketOpen).ForEach(func(_, v []byte) error {
		if seq := binary.BigEndian.Uint64(v); before == 0 || seq < before {
			seqs = append(seqs, seq)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(seqs)
	return func() ([]byte, []byte) {
		for len(seqs) > 0 {
			k := seqKey(seqs[len(seqs)-1])
			seqs = seqs[:len(seqs)-1]
			if v := incs.Get(k); v != nil {
				return k, v
			}
		}
		return nil, nil
	}, nil
}

// SummaryOf is the summary of a whole incident (what decodeSummary reads off a stored record).
func SummaryOf(inc *Incident) Summary {
	s := Summary{ID: inc.ID, Cluster: inc.Cluster, Alertname: inc.Alertname, Step: inc.Step,
		StepDeadline: inc.StepDeadline, Outcome: inc.Outcome, Reason: inc.Reason, OpenedAt: inc.OpenedAt,
		UpdatedAt: inc.UpdatedAt, ClosedAt: inc.ClosedAt, ResolvedAt: inc.ResolvedAt, ContainedAt: inc.ContainedAt,
		RetriedBy: inc.RetriedBy}
	if inc.Verdict != nil {
		s.VerdictKind = inc.Verdict.Kind
	}
	return s
}
