package remediate

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// A 3|2|2 split of 7 nodes has no legal majority: recover refuses, the incident stops for a
// human, nothing is ever resumed, and the silence is expired so humans are paged.
func TestThreeWaySplitNeedsHuman(t *testing.T) {
	am := startAlertmanager(t)
	s := startSim(t, "gamma", 7, am.URL)
	cfg := testConfig(t, s)
	r := newRig(t, s, cfg)

	s.fault(t, "partition", "n1,n2,n3/n4,n5/n6,n7")
	r.waitConfirmed(t)
	id := r.fire(t)
	r.waitStep(t, id, incident.StepAwaitingRecovery, 30*time.Second)
	s.fault(t, "heal")
	_, err := r.e.Approve(t.Context(), id, approval("alice"))
	require.NoError(t, err)
	inc := r.waitClosed(t, id, 30*time.Second)
	require.Equal(t, incident.OutcomeNeedsHuman, inc.Outcome, inc.Reason)
	require.Contains(t, inc.Reason, "no unique majority")
	require.Nil(t, inc.Recovery)

	for _, e := range s.audit(t) {
		require.False(t, isCmd(e, "raft", "resume"), "raft resume on %s after a failed arbitration", e.Node)
	}
	s.requireNoViolations(t)
	all, err := testSilencer(t, am.URL).List(t.Context())
	require.NoError(t, err)
	require.Len(t, all, 1)
	require.Equal(t, "expired", state(all[0]), "humans must be paged")
}

// Without a confirmed verdict nothing is mutated: no node command but reads, no silence.
func TestNotConfirmedMutatesNothing(t *testing.T) {
	am := startAlertmanager(t)
	s := startSim(t, "delta", 5, am.URL)
	r := newRig(t, s, testConfig(t, s))

	id := r.fire(t) // a healthy cluster: the alert is wrong
	inc := r.waitClosed(t, id, 20*time.Second)
	require.Equal(t, incident.OutcomeNotConfirmed, inc.Outcome, inc.Reason)
	require.False(t, inc.RemediationStarted)
	require.Zero(t, countMutating(s.audit(t)))
	all, err := testSilencer(t, am.URL).List(t.Context())
	require.NoError(t, err)
	require.Empty(t, all)
}

// The same alert delivered 50 times by three Alertmanager replicas, concurrently, is one
// incident and one runbook run.
func TestDuplicateDeliveriesOneRun(t *testing.T) {
	s := startSim(t, "eps", 5, "")
	cfg := testConfig(t, s)
	cfg.Remediation.RequireApproval = false
	r := newRig(t, s, cfg)
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	r.waitConfirmed(t)

	ids := make(chan string, 50)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() { ids <- r.deliver(t, "firing", []string{"am-0", "am-1", "am-2"}[i%3]) })
	}
	wg.Wait()
	close(ids)
	first := ""
	for id := range ids {
		if first == "" {
			first = id
		}
		require.Equal(t, first, id, "every delivery attaches to the one open incident")
	}
	r.waitStep(t, first, incident.StepAwaitingRecovery, 30*time.Second)
	for range 5 { // deliveries keep coming while it waits
		r.deliver(t, "firing", "am-1")
	}
	s.fault(t, "heal")
	inc := r.waitClosed(t, first, 40*time.Second)
	require.Equal(t, incident.OutcomeRecovered, inc.Outcome, inc.Reason)
	requireSOPOrder(t, s.audit(t), 5)
	s.requireNoViolations(t)
}

// Each guard ends the incident with its own outcome and mutates nothing.
func TestGuardsMutateNothing(t *testing.T) {
	s := startSim(t, "zeta", 5, "")
	cfg := testConfig(t, s)
	cfg.Remediation.RequireApproval = false
	r := newRig(t, s, cfg)
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	r.waitConfirmed(t)

	// Pause (kill switch): reason required, persisted.
	require.ErrorIs(t, r.e.Pause(t.Context(), "zeta", incident.Approval{By: "bob"}), ErrInvalid)
	require.ErrorIs(t, r.e.Pause(t.Context(), "nope", approval("bob")), incident.ErrUnknownCluster)
	require.NoError(t, r.e.Pause(t.Context(), "zeta", approval("bob")))
	r.restart(t) // the pause survives
	inc := r.waitClosed(t, r.fire(t), 20*time.Second)
	require.Equal(t, incident.OutcomePaused, inc.Outcome, inc.Reason)
	require.Contains(t, inc.Reason, "bob")
	require.Zero(t, countMutating(s.audit(t)))
	require.NoError(t, r.e.Unpause(t.Context(), "zeta", approval("bob")))

	// Dry run: plan and evidence recorded, outcome dry_run.
	dry := true
	cfg.Clusters[0].DryRun = &dry
	r.e.SetConfig(cfg)
	inc = r.waitClosed(t, r.fire(t), 20*time.Second)
	require.Equal(t, incident.OutcomeDryRun, inc.Outcome, inc.Reason)
	require.NotEmpty(t, inc.Plan)
	require.NotNil(t, inc.Verdict)
	require.Zero(t, countMutating(s.audit(t)))
	cfg.Clusters[0].DryRun = nil
	r.e.SetConfig(cfg)

	// Anti-flap: a remediation finished moments ago.
	cfg.Remediation.AntiFlap = model.Duration(time.Hour)
	r.e.SetConfig(cfg)
	now := time.Now()
	require.NoError(t, updateClusterState(t.Context(), r.j, "zeta", func(cs *clusterState) {
		cs.LastRemediationAt, cs.LastRemediationIncident = &now, "inc-999999"
	}))
	inc = r.waitClosed(t, r.fire(t), 20*time.Second)
	require.Equal(t, incident.OutcomeAntiFlap, inc.Outcome, inc.Reason)
	require.Zero(t, countMutating(s.audit(t)))
	cfg.Remediation.AntiFlap = 0
	r.e.SetConfig(cfg)
}

// Blast radius: with max_clusters 1, a second cluster in trouble while the first is being
// remediated is refused and untouched.
func TestBlastRadiusMutatesNothing(t *testing.T) {
	a := startSim(t, "eta", 5, "")
	b := startSim(t, "theta", 5, "")
	cfg := testConfig(t, a)
	cfgB := testConfig(t, b)
	cfg.Clusters = append(cfg.Clusters, cfgB.Clusters...)
	cfg.Remediation.BlastRadius.MaxClusters = 1
	r := newRig(t, a, cfg)

	a.fault(t, "partition", "n1,n2,n3/n4,n5")
	b.fault(t, "partition", "n1,n2,n3/n4,n5")
	r.waitConfirmed(t)
	idA := r.fire(t)
	r.waitStep(t, idA, incident.StepAwaitingRecovery, 30*time.Second)

	rb := &rig{sim: b, j: r.j, e: r.e, p: r.p}
	idB := rb.fire(t)
	inc := r.waitClosed(t, idB, 20*time.Second)
	require.Equal(t, incident.OutcomeBlastRadius, inc.Outcome, inc.Reason)
	require.Zero(t, countMutating(b.audit(t)))
	require.NotZero(t, countMutating(a.audit(t)))
}
