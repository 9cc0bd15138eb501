package remediate

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// Abort stops the runbook at once, records who and why, expires the silence and says what
// state the nodes were left in; approvals and aborts outside their steps are conflicts.
func TestAbortLeavesAClearReport(t *testing.T) {
	am := startAlertmanager(t)
	s := startSim(t, "nu", 5, am.URL)
	r := newRig(t, s, testConfig(t, s))

	// Plan mutates nothing and names the exact argv per node.
	rep, err := r.e.Plan(t.Context(), "nu")
	require.NoError(t, err)
	plan := rep
	require.Equal(t, incident.VerdictNotConfirmed, plan.Verdict.Kind)
	joined := strings.Join(plan.Steps, "\n")
	// The generated config runs the lean zmysimctl built beside zmysim (harness_test.go).
	require.Contains(t, joined, zmysimBin+"ctl --endpoint ")
	require.Contains(t, joined, "raft suspend --force")
	require.Contains(t, joined, "quorum recover --auto")
	_, err = r.e.Plan(t.Context(), "nope")
	require.ErrorIs(t, err, incident.ErrUnknownCluster)
	require.Zero(t, countMutating(s.audit(t)))

	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	r.waitConfirmed(t)
	id := r.fire(t)
	inc := r.waitStep(t, id, incident.StepAwaitingRecovery, 30*time.Second)
	require.Equal(t, incident.StepAwaitingRecovery, inc.Step)

	st, err := r.e.Clusters(t.Context())
	require.NoError(t, err)
	require.Equal(t, id, st[0].OpenIncident)
	require.Equal(t, incident.StepAwaitingRecovery, st[0].CurrentStep)
	require.Equal(t, 1.0, testutil.ToFloat64(r.e.m.step.WithLabelValues("nu", "awaiting_recovery")))
	require.NotZero(t, testutil.ToFloat64(r.e.m.stepDeadline.WithLabelValues("nu")))

	_, err = r.e.Abort(t.Context(), id, incident.Approval{By: "carol"})
	require.ErrorIs(t, err, ErrInvalid)
	inc, err = r.e.Abort(t.Context(), id, incident.Approval{By: "carol", Reason: "doing it by hand"})
	require.NoError(t, err)
	require.Equal(t, incident.OutcomeAborted, inc.Outcome)
	require.False(t, inc.Open())
	require.Equal(t, "carol", inc.Abort.By)
	require.Contains(t, inc.Reason, "nodes left suspended: n1,n2,n3,n4,n5")
	require.Contains(t, inc.Reason, inc.SnapshotTag)
	require.Contains(t, inc.Reason, "quorum recover not run")
	require.Contains(t, inc.Reason, "zmyctl raft resume")

	_, err = r.e.Abort(t.Context(), id, approval("carol"))
	require.ErrorIs(t, err, incident.ErrConflict)
	_, err = r.e.Approve(t.Context(), id, approval("carol"))
	require.ErrorIs(t, err, incident.ErrConflict)

	// Nothing more happens: no recover, no resume, even once the network heals.
	s.fault(t, "heal")
	time.Sleep(500 * time.Millisecond)
	for _, e := range s.audit(t) {
		require.False(t, isCmd(e, "quorum", "recover") || isCmd(e, "raft", "resume"), "acted after abort: %v", e.Args)
	}
	all, err := testSilencer(t, am.URL).List(t.Context())
	require.NoError(t, err)
	require.Len(t, all, 1)
	require.Equal(t, "expired", state(all[0]))
	require.Equal(t, 1.0, testutil.ToFloat64(r.e.m.incidents.WithLabelValues("nu", "aborted")))
	require.Equal(t, 0.0, testutil.ToFloat64(r.e.m.step.WithLabelValues("nu", "awaiting_recovery")))
	require.Equal(t, 0.0, testutil.ToFloat64(r.e.m.stepDeadline.WithLabelValues("nu")))
	s.requireNoViolations(t)
}

// Every metric of the remediate rows of ARCHITECTURE.md exists at zero before any incident.
func TestMetricsPrecreated(t *testing.T) {
	s := startSim(t, "xi", 3, "")
	r := newRig(t, s, testConfig(t, s))
	n, err := testutil.GatherAndCount(r.reg,
		"zmy_responder_incidents_total", "zmy_responder_incident_step", "zmy_responder_steps_total",
		"zmy_responder_step_deadline_timestamp_seconds", "zmy_responder_breaker_state",
		"zmy_responder_cluster_paused", "zmy_responder_silences_total", "zmy_responder_acknowledgements_total")
	require.NoError(t, err)
	// Per cluster: every outcome but unknown_cluster (the receiver's), and the breaker's three
	// states.
	want := len(incident.Outcomes) - 1 + len(stepNames()) + len(stepNames())*len(statuses) + 1 + 3 + 1 + len(silenceActions) + len(ackSources)
	require.Equal(t, want, n)
	require.Equal(t, 1.0, testutil.ToFloat64(r.e.m.breakerState.WithLabelValues("xi", "closed")))
	require.Equal(t, 0.0, testutil.ToFloat64(r.e.m.breakerState.WithLabelValues("xi", "open")))
	for _, name := range []string{"zmy_responder_step_duration_seconds", "zmy_responder_time_to_containment_seconds"} {
		mfs, err := r.reg.Gather()
		require.NoError(t, err)
		found := false
		for _, mf := range mfs {
			found = found || mf.GetName() == name
		}
		require.True(t, found, name)
	}
}
