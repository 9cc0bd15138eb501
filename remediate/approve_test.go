package remediate

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

// Concurrent approvals by one person (a double click, two tabs, a retried request) credit
// them once, with the first; the repeats are noted in the timeline. Other people still count.
func TestApproveOncePerPerson(t *testing.T) {
	j, err := incident.Open(filepath.Join(t.TempDir(), "journal.db"), incident.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	e, err := NewEngine(config.Default(), j, nil, Options{}) // never run: only Approve is exercised
	require.NoError(t, err)
	res, err := j.Ingest(t.Context(), []incident.Delivery{{Cluster: "c1", Alertname: "ZMY_Quorum_Down", Known: true,
		Alert: incident.AlertRecord{Fingerprint: "f1", Status: "firing", StartsAt: time.Now().Truncate(time.Second)}}})
	require.NoError(t, err)
	id := res[0].IncidentID
	_, err = j.Update(t.Context(), id, func(inc *incident.Incident) error {
		inc.Step = incident.StepAwaitingRecovery
		inc.Verdict = &incident.Verdict{Kind: incident.VerdictConfirmed}
		return nil
	})
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make(chan error, 17)
	for i := range 16 {
		by := "alice"
		if i%2 == 1 {
			by = "Alice" // the same person, typed differently
		}
		wg.Go(func() {
			_, err := e.Approve(t.Context(), id, incident.Approval{By: by, Reason: "go"})
			errs <- err
		})
	}
	wg.Go(func() {
		_, err := e.Approve(t.Context(), id, incident.Approval{By: "bob", Reason: "agreed"})
		errs <- err
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "a repeat approval is not an error")
	}

	inc, err := j.Get(t.Context(), id)
	require.NoError(t, err)
	var who []string
	for _, a := range inc.Approvals {
		who = append(who, strings.ToLower(a.By))
	}
	require.ElementsMatch(t, []string{"alice", "bob"}, who, "one approval per person")
	approved, again := 0, 0
	for _, ev := range inc.Timeline {
		switch {
		case strings.HasPrefix(ev.Message, "approved by "):
			approved++
		case strings.HasPrefix(ev.Message, "approved again by "):
			again++
			require.Contains(t, ev.Message, "not counted")
		}
	}
	require.Equal(t, 2, approved)
	require.Equal(t, 15, again, "every repeat is noted")

	// After a re-containment the earlier approvals no longer count: alice may approve again.
	_, err = j.Update(t.Context(), id, func(inc *incident.Incident) error {
		at := time.Now()
		inc.Recontained, inc.RecontainedAt = 1, &at
		return nil
	})
	require.NoError(t, err)
	inc, err = e.Approve(t.Context(), id, incident.Approval{By: "alice", Reason: "the new world looks right"})
	require.NoError(t, err)
	require.Len(t, inc.Approvals, 3)
	require.Equal(t, "the new world looks right", currentApproval(inc).Reason)
}
