package remediate

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/sim"
)

// A 3|2 partition end to end: confirmed, silenced, contained, snapshotted, approved, healed,
// recovered; the audit log proves the SOP's order and the invariants stay clean.
func TestPartition32Recovers(t *testing.T) {
	am := startAlertmanager(t)
	s := startSim(t, "alpha", 5, am.URL)
	r := newRig(t, s, testConfig(t, s))

	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	r.waitConfirmed(t)
	id := r.fire(t)

	inc := r.waitStep(t, id, incident.StepAwaitingRecovery, 30*time.Second)
	require.Equal(t, incident.StepAwaitingRecovery, inc.Step, inc.Reason)
	require.NotNil(t, inc.ContainedAt)
	require.True(t, inc.RemediationStarted)
	require.NotEmpty(t, inc.SnapshotTag)
	require.NotEmpty(t, inc.Plan)
	require.Equal(t, incident.VerdictConfirmed, inc.Verdict.Kind)

	// One silence, active, while the gate waits.
	sil := testSilencer(t, am.URL)
	all, err := sil.List(t.Context())
	require.NoError(t, err)
	require.Len(t, all, 1)
	require.Equal(t, "active", state(all[0]))

	// Healed but not approved: the gate holds.
	s.fault(t, "heal")
	time.Sleep(500 * time.Millisecond)
	inc, err = r.j.Get(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, incident.StepAwaitingRecovery, inc.Step)
	require.Nil(t, inc.Recovery)

	_, err = r.e.Approve(t.Context(), id, approval("alice"))
	require.NoError(t, err)
	inc = r.waitClosed(t, id, 40*time.Second)
	require.Equal(t, incident.OutcomeRecovered, inc.Outcome, inc.Reason)
	require.NotNil(t, inc.Recovery)
	require.ElementsMatch(t, []string{"n1", "n2", "n3"}, inc.Recovery.Majority)

	// The silence is expired, and it stayed the only one.
	all, err = sil.List(t.Context())
	require.NoError(t, err)
	require.Len(t, all, 1)
	require.Equal(t, "expired", state(all[0]))

	audit := s.audit(t)
	requireSOPOrder(t, audit, 5)
	s.requireNoViolations(t)

	require.Equal(t, 1.0, testutil.ToFloat64(r.e.m.incidents.WithLabelValues("alpha", "recovered")))
	require.Equal(t, 0.0, testutil.ToFloat64(r.e.m.step.WithLabelValues("alpha", "awaiting_recovery")))
	require.Equal(t, 1, testutil.CollectAndCount(r.e.m.containment))
	require.Equal(t, uint64(1), containments(t, r))
	require.GreaterOrEqual(t, testutil.ToFloat64(r.e.m.silences.WithLabelValues("created")), 1.0)
	require.Equal(t, 1.0, testutil.ToFloat64(r.e.m.silences.WithLabelValues("expired")))
}

// requireSOPOrder checks the audit log of one successful remediation: exactly one suspend per
// node, every snapshot save before the recover, exactly one successful recover, and no resume
// before it.
func requireSOPOrder(t *testing.T, audit []sim.AuditEntry, nodes int) {
	t.Helper()
	suspends := map[string]int{}
	recoverAt := -1
	lastSave := -1
	saved := map[string]bool{}
	for i, e := range audit {
		switch {
		case isCmd(e, "raft", "suspend"):
			suspends[e.Node]++
		case isCmd(e, "snapshot", "save"):
			saved[e.Node] = true
			lastSave = i
		case isCmd(e, "quorum", "recover"):
			if e.Exit == 0 {
				require.Equal(t, -1, recoverAt, "a second successful recover")
				recoverAt = i
			}
		case isCmd(e, "raft", "resume"):
			require.NotEqual(t, -1, recoverAt, "raft resume on %s before quorum recover", e.Node)
		}
	}
	require.Len(t, suspends, nodes)
	for n, c := range suspends {
		require.Equal(t, 1, c, "suspends on %s", n)
	}
	require.Len(t, saved, nodes, "a snapshot on every node")
	require.NotEqual(t, -1, recoverAt)
	require.Less(t, lastSave, recoverAt, "every snapshot before the recover")
}
