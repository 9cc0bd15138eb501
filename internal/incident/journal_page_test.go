package incident

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// pageJournal holds incidents inc-000001…inc-000010: odd ones on cluster "east", even ones on
// "west"; 3, 6 and 9 closed; 4 with a confirmed verdict and big evidence.
func pageJournal(t *testing.T) *Journal {
	t.Helper()
	ctx := t.Context()
	j := openTest(t, t.TempDir())
	for i := 1; i <= 10; i++ {
		cluster := "east"
		if i%2 == 0 {
			cluster = "west"
		}
		d := delivery(cluster, fmt.Sprint("fp", i), "firing", t0)
		d.Alertname = fmt.Sprint("Alert", i) // a new (cluster, alertname): a new incident
		res, err := j.Ingest(ctx, []Delivery{d})
		require.NoError(t, err)
		require.Equal(t, FormatID(uint64(i)), res[0].IncidentID)
	}
	for _, id := range []string{"inc-000003", "inc-000006", "inc-000009"} {
		_, err := j.Update(ctx, id, func(inc *Incident) error {
			inc.Step, inc.Outcome, inc.Reason = StepClosed, OutcomeNotConfirmed, "4 shards agree"
			return nil
		})
		require.NoError(t, err)
	}
	_, err := j.Update(ctx, "inc-000004", func(inc *Incident) error {
		inc.Step = StepAwaitingRecovery
		inc.Verdict = &Verdict{Kind: VerdictConfirmed, Evidence: []Evidence{{Node: "n1", Probe: "data", Raw: string(make([]byte, 64<<10))}}}
		inc.Timeline = append(inc.Timeline, Event{At: t0, Step: StepContaining, Message: "suspended"})
		at := t0.Add(time.Second)
		inc.ContainedAt = &at
		return nil
	})
	require.NoError(t, err)
	return j
}

func ids(p *Page) []string {
	var out []string
	for _, s := range p.Incidents {
		out = append(out, s.ID)
	}
	return out
}

// pages follows the cursor to the end and returns every page's IDs.
func pages(t *testing.T, j *Journal, q PageQuery) [][]string {
	t.Helper()
	var out [][]string
	for range 20 {
		p, err := j.Page(t.Context(), q)
		require.NoError(t, err)
		out = append(out, ids(p))
		if p.Next == "" {
			return out
		}
		q.Cursor = p.Next
	}
	t.Fatal("the cursor never ended")
	return nil
}

func TestPage(t *testing.T) {
	j := pageJournal(t)
	for _, tc := range []struct {
		name string
		q    PageQuery
		want [][]string
	}{
		{"default: all, newest first", PageQuery{},
			[][]string{{"inc-000010", "inc-000009", "inc-000008", "inc-000007", "inc-000006", "inc-000005", "inc-000004", "inc-000003", "inc-000002", "inc-000001"}}},
		{"pages of 4", PageQuery{Limit: 4},
			[][]string{{"inc-000010", "inc-000009", "inc-000008", "inc-000007"}, {"inc-000006", "inc-000005", "inc-000004", "inc-000003"}, {"inc-000002", "inc-000001"}}},
		{"an exact fit has no empty last page", PageQuery{Limit: 5},
			[][]string{{"inc-000010", "inc-000009", "inc-000008", "inc-000007", "inc-000006"}, {"inc-000005", "inc-000004", "inc-000003", "inc-000002", "inc-000001"}}},
		{"open", PageQuery{State: StateOpen, Limit: 3},
			[][]string{{"inc-000010", "inc-000008", "inc-000007"}, {"inc-000005", "inc-000004", "inc-000002"}, {"inc-000001"}}},
		{"closed", PageQuery{State: StateClosed}, [][]string{{"inc-000009", "inc-000006", "inc-000003"}}},
		{"cluster", PageQuery{Cluster: "west", Limit: 2},
			[][]string{{"inc-000010", "inc-000008"}, {"inc-000006", "inc-000004"}, {"inc-000002"}}},
		{"cluster and state", PageQuery{Cluster: "east", State: StateClosed}, [][]string{{"inc-000009", "inc-000003"}}},
		{"a cluster whose name is a prefix of none", PageQuery{Cluster: "eas"}, [][]string{nil}},
		{"from a cursor", PageQuery{Cursor: "inc-000003"}, [][]string{{"inc-000002", "inc-000001"}}},
		{"from a cursor past the newest", PageQuery{Cursor: "inc-000999", Limit: 1},
			[][]string{{"inc-000010"}, {"inc-000009"}, {"inc-000008"}, {"inc-000007"}, {"inc-000006"}, {"inc-000005"}, {"inc-000004"}, {"inc-000003"}, {"inc-000002"}, {"inc-000001"}}},
		{"from the oldest", PageQuery{Cursor: "inc-000001"}, [][]string{nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, pages(t, j, tc.q))
		})
	}
}

func TestPageSummaries(t *testing.T) {
	j := pageJournal(t)
	p, err := j.Page(t.Context(), PageQuery{Cluster: "west", Limit: 4})
	require.NoError(t, err)
	require.Len(t, p.Incidents, 4)
	s := p.Incidents[2]
	require.Equal(t, "inc-000006", s.ID)
	require.Equal(t, StepClosed, s.Step)
	require.Equal(t, OutcomeNotConfirmed, s.Outcome)
	require.Equal(t, "4 shards agree", s.Reason)
	require.NotNil(t, s.ClosedAt)
	require.False(t, s.Open())

	s = p.Incidents[3]
	require.Equal(t, "inc-000004", s.ID)
	require.Equal(t, VerdictConfirmed, s.VerdictKind)
	require.Equal(t, StepAwaitingRecovery, s.Step)
	require.Equal(t, "Alert4", s.Alertname)
	require.Equal(t, t0.Add(time.Second), s.ContainedAt.UTC())
	require.False(t, s.OpenedAt.IsZero())
	require.True(t, s.Open())

	// The full record is still the detail's.
	inc, err := j.Get(t.Context(), "inc-000004")
	require.NoError(t, err)
	require.Len(t, inc.Verdict.Evidence, 1)
	require.Len(t, inc.Alerts, 1)
}

func TestPageRejects(t *testing.T) {
	j := pageJournal(t)
	for _, q := range []PageQuery{
		{State: "gone"},
		{Limit: -1},
		{Limit: MaxPageLimit + 1},
		{Cursor: "inc-"},
		{Cursor: "42"},
	} {
		_, err := j.Page(t.Context(), q)
		require.Error(t, err, "%+v", q)
		require.True(t, errors.Is(err, ErrInvalidQuery), "%+v: %v", q, err)
	}
	p, err := j.Page(t.Context(), PageQuery{Limit: MaxPageLimit})
	require.NoError(t, err)
	require.Len(t, p.Incidents, 10)

	// An empty journal has one empty page.
	empty := openTest(t, t.TempDir())
	p, err = empty.Page(t.Context(), PageQuery{})
	require.NoError(t, err)
	require.Empty(t, p.Incidents)
	require.Empty(t, p.Next)
}
