package remediate

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// openGate is a recovery gate that always says go: a wrong component upstream of arbitration.
type openGate struct{ Prober }

func (openGate) RecoveryGate(context.Context, string) (incident.Gate, error) {
	return incident.Gate{NetworkConverged: true, EtcdHealthy: true, At: time.Now()}, nil
}

// Safety rule: `quorum recover` never runs before every node holds its pre-recover snapshot. Here
// the gate lies and n3 can no longer prove it holds the snapshot when arbitration starts: the
// arbitration stage's own re-check must stop the runbook, with no recover and no resume sent.
func TestRecoverNeedsEverySnapshotEvenIfTheGateLies(t *testing.T) {
	s := startSim(t, "omicron", 5, "")
	r := &rig{sim: s, cfg: testConfig(t, s), dir: t.TempDir(), wrap: func(p Prober) Prober { return openGate{p} }}
	r.start(t)
	t.Cleanup(func() { r.stop(t) })
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	r.waitConfirmed(t)
	id := r.fire(t)
	inc := r.waitStep(t, id, incident.StepAwaitingRecovery, 30*time.Second)
	require.NotEmpty(t, inc.SnapshotTag)

	// The network heals, so a recover would succeed if it were sent; but n3's zmyctl now fails.
	s.fault(t, "heal")
	s.fault(t, "ctl", "n3", "fail")
	_, err := r.e.Approve(t.Context(), id, approval("alice"))
	require.NoError(t, err)
	inc = r.waitClosed(t, id, 30*time.Second)
	require.Equal(t, incident.OutcomeNeedsHuman, inc.Outcome, inc.Reason)
	require.Contains(t, inc.Reason, "quorum recover not run")
	require.Nil(t, inc.Recovery)
	for _, e := range s.audit(t) {
		require.False(t, isCmd(e, "quorum", "recover"), "recover sent: %+v", e)
		require.False(t, isCmd(e, "raft", "resume"), "resume sent: %+v", e)
	}
	s.requireNoViolations(t)
}
