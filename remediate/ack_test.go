package remediate

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// A karma-style acknowledgement ("ACK! …" silence on the alert's own labels) while the nodes
// are being suspended is not a takeover: the runbook goes on to the gate and, once approved, to
// recovered; the incident lists who acknowledged, and the human's silence is left alone.
func TestAckSilenceIsNotATakeover(t *testing.T) {
	am := startAlertmanager(t)
	s := startSim(t, "phi", 5, am.URL)
	r := newRig(t, s, testConfig(t, s))
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	r.waitConfirmed(t)
	id := r.fire(t)
	sil := testSilencer(t, am.URL)
	ack := postHuman(t, sil, "carol", "phi", "ACK! This alert was acknowledged using karma on Mon, 30 Nov 2026 03:12:00 UTC")

	inc := r.waitFor(t, id, 30*time.Second, "at the gate with the acknowledgement", func(inc *incident.Incident) bool {
		return inc.Step == incident.StepAwaitingRecovery && len(inc.Acks) > 0 || !inc.Open()
	})
	require.True(t, inc.Open(), "%s: %s", inc.Outcome, inc.Reason)
	require.Len(t, inc.Acks, 1)
	require.Equal(t, "carol", inc.Acks[0].By)
	require.Equal(t, ack, inc.Acks[0].SilenceID)
	require.Equal(t, ackBySilence, inc.Acks[0].Source)
	requireTimeline(t, inc, "acknowledged by carol (silence): ACK!")

	s.fault(t, "heal")
	_, err := r.e.Approve(t.Context(), id, approval("alice"))
	require.NoError(t, err)
	inc = r.waitClosed(t, id, 40*time.Second)
	require.Equal(t, incident.OutcomeRecovered, inc.Outcome, inc.Reason)
	require.Len(t, inc.Acks, 1, "one acknowledgement per silence, however often it is seen")
	got, err := sil.get(t.Context(), ack)
	require.NoError(t, err)
	require.Equal(t, "active", state(got), "an acknowledgement silence is the human's: never expired by us")
	require.Equal(t, 1.0, testutil.ToFloat64(r.e.m.acks.WithLabelValues(ackBySilence)))
	require.Zero(t, testutil.ToFloat64(r.e.m.silences.WithLabelValues(silenceForeign)))
	s.requireNoViolations(t)
}

// An acknowledgement through the API is recorded, and never stands for an approval: the gate
// keeps waiting for one.
func TestAPIAckDoesNotApprove(t *testing.T) {
	s := startSim(t, "chi", 5, "")
	r := newRig(t, s, testConfig(t, s))
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	r.waitConfirmed(t)
	id := r.fire(t)
	inc := r.waitFor(t, id, 30*time.Second, "at the gate, split", func(inc *incident.Incident) bool {
		return inc.Gate != nil || !inc.Open()
	})
	require.Equal(t, []string{waitNetwork, waitApproval}, inc.Gate.WaitingFor, "the structured gate")
	require.Greater(t, inc.Gate.PartitionScore, 0.0)
	require.Equal(t, *inc.StepDeadline, inc.Gate.Deadline)
	s.fault(t, "heal")
	_, err := r.e.Ack(t.Context(), id, incident.Approval{By: "dave", Reason: "on it"})
	require.NoError(t, err)
	_, err = r.e.Ack(t.Context(), id, incident.Approval{By: "dave", Reason: "still on it"})
	require.NoError(t, err)
	_, err = r.e.Ack(t.Context(), id, incident.Approval{})
	require.ErrorIs(t, err, ErrInvalid)

	inc = r.waitFor(t, id, 20*time.Second, "the healed gate still waiting for an approval", func(inc *incident.Incident) bool {
		last := inc.Timeline[len(inc.Timeline)-1]
		return strings.Contains(last.Message, "gate closed: waiting for a human approval") && len(inc.Acks) == 1 || !inc.Open()
	})
	require.Equal(t, []string{waitApproval}, inc.Gate.WaitingFor)
	require.Equal(t, incident.StepAwaitingRecovery, inc.Step, "%s: %s", inc.Outcome, inc.Reason)
	require.Len(t, inc.Acks, 1, "one acknowledgement per person")
	require.Equal(t, "dave", inc.Acks[0].By)
	require.Equal(t, ackByAPI, inc.Acks[0].Source)
	require.Empty(t, inc.Approvals)
}

// A human expiring the responder's silence is noticed within the watch interval, counted
// under its own label, and the silence is not put back.
func TestHumanExpiryOfOurSilenceIsNoticed(t *testing.T) {
	am := startAlertmanager(t)
	s := startSim(t, "psi", 5, am.URL)
	cfg := testConfig(t, s)
	cfg.Alertmanager.ExtendEvery = cfg.Alertmanager.SilenceDuration / 2 // nothing noticed by extending
	r := newRig(t, s, cfg)
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	r.waitConfirmed(t)
	id := r.fire(t)
	inc := r.waitFor(t, id, 30*time.Second, "silenced at the gate", func(inc *incident.Incident) bool {
		return inc.Step == incident.StepAwaitingRecovery && currentSilence(inc).id != "" || !inc.Open()
	})
	ours := currentSilence(inc).id
	sil := testSilencer(t, am.URL)
	require.NoError(t, sil.Expire(t.Context(), ours))
	inc = r.waitFor(t, id, 15*time.Second, "the human's expiry noticed", func(inc *incident.Incident) bool {
		return currentSilence(inc).ended
	})
	require.Equal(t, silenceHumanExpired, inc.Silences[len(inc.Silences)-1].Action)
	require.Equal(t, 1.0, testutil.ToFloat64(r.e.m.silences.WithLabelValues(silenceHumanExpired)))
	require.Never(t, func() bool {
		all, err := sil.List(context.Background())
		if err != nil {
			return false // the test is over (Never's last look may outlive it)
		}
		for _, a := range all {
			if state(a) == "active" {
				return true
			}
		}
		return false
	}, time.Second, 100*time.Millisecond, "not put back")
}
