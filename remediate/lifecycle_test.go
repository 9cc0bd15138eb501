package remediate

import (
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// An alert that resolves before anything was mutated ends as self_healed, untouched.
func TestResolvedBeforeActingIsSelfHealed(t *testing.T) {
	s := startSim(t, "omicron", 3, "")
	r := newRig(t, s, testConfig(t, s))
	now := time.Now()
	alert := func(status string, at time.Time) incident.Delivery {
		return incident.Delivery{Cluster: "omicron", Alertname: "ZMY_Quorum_Down", Known: true,
			Alert: incident.AlertRecord{Fingerprint: "f00dfeed", Status: status, StartsAt: now.Add(-time.Minute),
				ReceivedAt: at, Labels: map[string]string{"alertname": "ZMY_Quorum_Down", "cluster": "omicron"}}}
	}
	// Journaled without a Kick, as if the daemon died right after the webhooks; Run's
	// resume of open incidents picks it up.
	r.stop(t)
	j, err := incident.Open(r.dir, incident.Options{})
	require.NoError(t, err)
	res, err := j.Ingest(t.Context(), []incident.Delivery{alert("firing", now)})
	require.NoError(t, err)
	_, err = j.Ingest(t.Context(), []incident.Delivery{alert("resolved", now.Add(time.Second))})
	require.NoError(t, err)
	require.NoError(t, j.Close())
	r.start(t)

	inc := r.waitClosed(t, res[0].IncidentID, 10*time.Second)
	require.Equal(t, incident.OutcomeSelfHealed, inc.Outcome, inc.Reason)
	require.Zero(t, countMutating(s.audit(t)))
}

// Silences we created whose incident is closed or unknown (a crash left them) are expired at
// start; another deployment's, and a human's, are left alone.
func TestOrphanSilencesExpiredAtStart(t *testing.T) {
	am := startAlertmanager(t)
	s := startSim(t, "pi", 3, am.URL)
	sil := testSilencer(t, am.URL)
	orphan, _, err := sil.Create(t.Context(), testIncident("inc-000077", "pi"), time.Now())
	require.NoError(t, err)
	other, _, err := sil.Create(t.Context(), testIncident("inc-000077", "somebody-elses"), time.Now())
	require.NoError(t, err)
	human := postForeign(t, sil, "alice", "pi")

	newRig(t, s, testConfig(t, s))
	require.Eventually(t, func() bool {
		got, err := sil.get(t.Context(), orphan)
		return err == nil && state(got) == "expired"
	}, 10*time.Second, 50*time.Millisecond, "orphan of an unknown incident expired")
	for _, id := range []string{other, human} {
		got, err := sil.get(t.Context(), id)
		require.NoError(t, err)
		require.Equal(t, "active", state(got), id)
	}
}

// An alert that arrives a moment after the partition, before the split shows in the data, is
// probed again within detection.confirm_window and contained once confirmed, instead of closing
// not_confirmed for good.
func TestConfirmWindowCatchesAnEarlyAlert(t *testing.T) {
	s := startSim(t, "omega", 5, "")
	cfg := testConfig(t, s)
	cfg.Detection.ConfirmWindow = model.Duration(60 * time.Second)
	r := newRig(t, s, cfg)
	s.fault(t, "load", "0") // no writes: the sides cannot diverge yet
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	id := r.fire(t)
	inc := r.waitFor(t, id, 30*time.Second, "a first verdict that does not confirm", func(inc *incident.Incident) bool {
		return inc.Verdict != nil || !inc.Open()
	})
	require.True(t, inc.Open(), "%s: %s", inc.Outcome, inc.Reason)
	require.NotEqual(t, incident.VerdictConfirmed, inc.Verdict.Kind)
	requireTimeline(t, inc, "probing again every")

	s.fault(t, "load", "200") // the writes come back: each side takes its own
	inc = r.waitStep(t, id, incident.StepAwaitingRecovery, 60*time.Second)
	require.True(t, inc.Open(), "%s: %s", inc.Outcome, inc.Reason)
	require.Equal(t, incident.VerdictConfirmed, inc.Verdict.Kind)
}
