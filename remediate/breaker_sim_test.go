package remediate

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// fireNew delivers an alert with a fresh startsAt so it opens a new incident once the
// previous one closed.
func (r *rig) fireNew(t *testing.T, n int) string {
	t.Helper()
	now := time.Now()
	res, err := r.j.Ingest(t.Context(), []incident.Delivery{{
		Cluster: r.sim.name, Alertname: "ZMY_Quorum_Down", Known: true,
		Alert: incident.AlertRecord{Receiver: "am-0", Fingerprint: "f00dfeed", Status: "firing",
			StartsAt: now.Add(time.Duration(n) * time.Second), ReceivedAt: now,
			Labels: map[string]string{"alertname": "ZMY_Quorum_Down", "cluster": r.sim.name}},
	}})
	require.NoError(t, err)
	r.e.Kick(res[0].IncidentID)
	return res[0].IncidentID
}

// A node whose zmyctl always fails makes three remediations fail (needs_human): the breaker
// opens, the next alert mutates nothing, a restart keeps it open, and after the cool-down one
// half-open trial runs — and closes it when it recovers the cluster.
func TestBreakerOpensAfterFailedRemediations(t *testing.T) {
	s := startSim(t, "iota", 5, "")
	cfg := testConfig(t, s)
	cfg.Remediation.GoldenWindow = model.Duration(1500 * time.Millisecond)
	cfg.Remediation.Breaker.Cooldown = model.Duration(4 * time.Second)
	cfg.Remediation.RequireApproval = false
	r := newRig(t, s, cfg)
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	r.waitConfirmed(t)
	s.fault(t, "ctl", "n1", "fail")

	var ids []string
	for i := range 3 {
		id := r.fireNew(t, i)
		require.NotContains(t, ids, id)
		ids = append(ids, id)
		inc := r.waitClosed(t, id, 20*time.Second)
		require.Equal(t, incident.OutcomeNeedsHuman, inc.Outcome, inc.Reason)
		require.Contains(t, inc.Reason, "n1")
	}
	require.Equal(t, 1.0, testutil.ToFloat64(r.e.m.breakerState.WithLabelValues("iota", "open")))
	opened := time.Now()

	before := countMutating(s.audit(t))
	inc := r.waitClosed(t, r.fireNew(t, 10), 20*time.Second)
	require.Equal(t, incident.OutcomeBreakerOpen, inc.Outcome, inc.Reason)
	require.Equal(t, before, countMutating(s.audit(t)), "an open breaker mutates nothing")

	r.restart(t)
	inc = r.waitClosed(t, r.fireNew(t, 11), 20*time.Second)
	require.Equal(t, incident.OutcomeBreakerOpen, inc.Outcome, "the breaker survives a restart")
	require.Equal(t, before, countMutating(s.audit(t)))
	require.Equal(t, 1.0, testutil.ToFloat64(r.e.m.breakerState.WithLabelValues("iota", "open")))

	// After the cool-down: one half-open trial, which now succeeds.
	s.fault(t, "ctl", "n1", "ok")
	time.Sleep(time.Until(opened.Add(time.Duration(cfg.Remediation.Breaker.Cooldown) + 200*time.Millisecond)))
	id := r.fireNew(t, 12)
	r.waitStep(t, id, incident.StepAwaitingRecovery, 20*time.Second)
	s.fault(t, "heal")
	inc = r.waitClosed(t, id, 30*time.Second)
	require.Equal(t, incident.OutcomeRecovered, inc.Outcome, inc.Reason)
	require.Equal(t, 1.0, testutil.ToFloat64(r.e.m.breakerState.WithLabelValues("iota", "closed")), "closed after a good trial")
	require.Equal(t, 0.0, testutil.ToFloat64(r.e.m.breakerState.WithLabelValues("iota", "open")))
	st, err := r.e.Clusters(t.Context())
	require.NoError(t, err)
	require.Equal(t, "closed", st[0].Breaker)
	require.Equal(t, fmt.Sprint(incident.OutcomeRecovered), fmt.Sprint(st[0].LastOutcome))
	s.requireNoViolations(t)
}
