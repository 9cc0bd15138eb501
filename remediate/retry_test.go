package remediate

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

// A closed not_confirmed incident whose alert still fires is re-evaluated on request as a new
// incident linked to it, which confirms the split that came since and contains it.
func TestRetryReevaluates(t *testing.T) {
	s := startSim(t, "alpha2", 5, "")
	r := newRig(t, s, testConfig(t, s))
	id := r.fire(t) // healthy: not confirmed once the window passes
	old := r.waitClosed(t, id, 30*time.Second)
	require.Equal(t, incident.OutcomeNotConfirmed, old.Outcome, old.Reason)

	_, err := r.e.Retry(t.Context(), id, incident.Approval{By: "erin"})
	require.ErrorIs(t, err, ErrInvalid, "who and why")
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	r.waitConfirmed(t)
	re, err := r.e.Retry(t.Context(), id, approval("erin"))
	require.NoError(t, err)
	require.NotEqual(t, id, re.ID)
	require.Equal(t, id, re.RetryOf)
	_, err = r.e.Retry(t.Context(), id, approval("erin"))
	require.ErrorIs(t, err, incident.ErrConflict, "retried once")
	_, err = r.e.Retry(t.Context(), re.ID, approval("erin"))
	require.ErrorIs(t, err, incident.ErrConflict, "an open incident is not retried")

	inc := r.waitStep(t, re.ID, incident.StepAwaitingRecovery, 30*time.Second)
	require.True(t, inc.Open(), "%s: %s", inc.Outcome, inc.Reason)
	old, err = r.j.Get(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, re.ID, old.RetriedBy)
}

// Retrying an anti_flap refusal is the human override of the anti-flap period.
func TestRetryOverridesAntiFlap(t *testing.T) {
	s := startSim(t, "beta2", 5, "")
	cfg := testConfig(t, s)
	cfg.Remediation.AntiFlap = model.Duration(time.Hour)
	r := newRig(t, s, cfg)
	now := time.Now()
	require.NoError(t, updateClusterState(t.Context(), r.j, "beta2", func(cs *clusterState) {
		cs.LastRemediationAt, cs.LastRemediationIncident = &now, "inc-999999"
	}))
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	r.waitConfirmed(t)
	old := r.waitClosed(t, r.fire(t), 20*time.Second)
	require.Equal(t, incident.OutcomeAntiFlap, old.Outcome, old.Reason)
	require.Zero(t, countMutating(s.audit(t)))

	re, err := r.e.Retry(t.Context(), old.ID, approval("frank"))
	require.NoError(t, err)
	require.NotNil(t, re.AntiFlapOverride)
	require.Equal(t, "frank", re.AntiFlapOverride.By)
	inc := r.waitStep(t, re.ID, incident.StepAwaitingRecovery, 30*time.Second)
	require.True(t, inc.Open(), "%s: %s", inc.Outcome, inc.Reason)
	require.Positive(t, countMutating(s.audit(t)))
}

// An alert refused while the cluster was paused is re-evaluated when it is unpaused.
func TestUnpauseReevaluates(t *testing.T) {
	s := startSim(t, "gamma2", 5, "")
	r := newRig(t, s, testConfig(t, s))
	require.NoError(t, r.e.Pause(t.Context(), "gamma2", approval("gina")))
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	r.waitConfirmed(t)
	old := r.waitClosed(t, r.fire(t), 20*time.Second)
	require.Equal(t, incident.OutcomePaused, old.Outcome, old.Reason)

	require.NoError(t, r.e.Unpause(t.Context(), "gamma2", approval("gina")))
	old = r.waitFor(t, old.ID, 10*time.Second, "re-evaluated", func(inc *incident.Incident) bool { return inc.RetriedBy != "" })
	inc := r.waitStep(t, old.RetriedBy, incident.StepAwaitingRecovery, 30*time.Second)
	require.True(t, inc.Open(), "%s: %s", inc.Outcome, inc.Reason)
	require.Equal(t, old.ID, inc.RetryOf)
}

// A cluster refused for blast radius is not forgotten: when the remediation that held the slot
// ends, its still-firing alert is re-evaluated and remediated.
func TestBlastRadiusRefusalIsRequeued(t *testing.T) {
	a := startSim(t, "delta2", 5, "")
	b := startSim(t, "eps2", 5, "")
	cfg := testConfig(t, a)
	cfg.Clusters = append(cfg.Clusters, testConfig(t, b).Clusters...)
	cfg.Remediation.BlastRadius.MaxClusters = 1
	cfg.Remediation.RequireApproval = false
	r := newRig(t, a, cfg)
	rb := &rig{sim: b, j: r.j, e: r.e, p: r.p}

	a.fault(t, "partition", "n1,n2,n3/n4,n5")
	b.fault(t, "partition", "n1,n2,n3/n4,n5")
	r.waitConfirmed(t)
	rb.waitConfirmed(t)
	idA := r.fire(t)
	r.waitStep(t, idA, incident.StepAwaitingRecovery, 30*time.Second)
	refused := r.waitClosed(t, rb.fire(t), 20*time.Second)
	require.Equal(t, incident.OutcomeBlastRadius, refused.Outcome, refused.Reason)
	require.Zero(t, countMutating(b.audit(t)))

	a.fault(t, "heal")
	require.Equal(t, incident.OutcomeRecovered, r.waitClosed(t, idA, 40*time.Second).Outcome)
	refused = r.waitFor(t, refused.ID, 10*time.Second, "requeued", func(inc *incident.Incident) bool { return inc.RetriedBy != "" })
	inc := r.waitStep(t, refused.RetriedBy, incident.StepAwaitingRecovery, 30*time.Second)
	require.True(t, inc.Open(), "%s: %s", inc.Outcome, inc.Reason)
	require.Positive(t, countMutating(b.audit(t)))
}

// The queues read summaries page by page, newest first, and stop at the first incident closed
// before the window: a refusal behind more than a page of newer incidents is still found, and
// nothing older than the window is read.
func TestClosedSinceWalksPagesAndStopsAtTheWindow(t *testing.T) {
	j, err := incident.Open(filepath.Join(t.TempDir(), "journal.db"), incident.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	e, err := NewEngine(config.Default(), j, nil, Options{}) // never run
	require.NoError(t, err)
	ctx := t.Context()
	since := time.Now().Add(-time.Hour)
	n := incident.MaxPageLimit*2 + 7
	for i := range n {
		res, err := j.Ingest(ctx, []incident.Delivery{{Cluster: "c1", Alertname: fmt.Sprintf("A%d", i), Known: true,
			Alert: incident.AlertRecord{Fingerprint: "f1", Status: "firing", StartsAt: time.Now().Truncate(time.Second)}}})
		require.NoError(t, err)
		closed := since.Add(time.Minute) // within the window…
		if i == 0 {
			closed = since.Add(-time.Minute) // …but the oldest
		}
		_, err = j.Update(ctx, res[0].IncidentID, func(inc *incident.Incident) error {
			inc.Step, inc.Outcome, inc.ClosedAt = incident.StepClosed, incident.OutcomeBlastRadius, &closed
			return nil
		})
		require.NoError(t, err)
	}
	var seen []string
	require.NoError(t, e.closedSince(ctx, since, func(s *incident.Summary) bool {
		seen = append(seen, s.Alertname)
		return true
	}))
	require.Len(t, seen, n-1, "every incident within the window, across pages; not the one before it")
	require.Equal(t, fmt.Sprintf("A%d", n-1), seen[0], "newest first")
	require.Equal(t, "A1", seen[len(seen)-1])
}
