package remediate

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// A silence on the cluster that we did not create means a human took over: the runbook stops
// at once (here while the gate waits), says so, never arbitrates, and expires its own silence.
func TestManualSilenceIsTakeover(t *testing.T) {
	am := startAlertmanager(t)
	s := startSim(t, "kappa", 5, am.URL)
	r := newRig(t, s, testConfig(t, s))
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	r.waitConfirmed(t)
	id := r.fire(t)
	r.waitStep(t, id, incident.StepAwaitingRecovery, 30*time.Second)

	sil := testSilencer(t, am.URL)
	manual := postForeign(t, sil, "alice", "kappa")
	inc := r.waitClosed(t, id, 10*time.Second)
	require.Equal(t, incident.OutcomeNeedsHuman, inc.Outcome)
	require.Contains(t, inc.Reason, fmt.Sprintf("manual silence %s by alice", manual))
	require.Nil(t, inc.Recovery)
	for _, e := range s.audit(t) {
		require.False(t, isCmd(e, "quorum", "recover") || isCmd(e, "raft", "resume"), "acted after a takeover: %v", e.Args)
	}
	var foreign, ours int
	for _, si := range inc.Silences {
		switch si.Action {
		case silenceForeign:
			foreign++
			require.Equal(t, manual, si.ID)
		case silenceCreated:
			ours++
		}
	}
	require.Equal(t, 1, foreign)
	require.Equal(t, 1, ours)
	all, err := sil.List(t.Context())
	require.NoError(t, err)
	for _, a := range all {
		if deref(a.CreatedBy) == "zmy-responder" {
			require.Equal(t, "expired", state(a), "our silence is expired so humans are paged")
		} else {
			require.Equal(t, "active", state(a), "the human's silence is theirs")
		}
	}
	require.Equal(t, 1.0, testutil.ToFloat64(r.e.m.silences.WithLabelValues(silenceForeign)))
}

// A human's silence already in place before we act: nothing is mutated at all.
func TestManualSilenceBeforeContainment(t *testing.T) {
	am := startAlertmanager(t)
	s := startSim(t, "lambda", 5, am.URL)
	r := newRig(t, s, testConfig(t, s))
	postForeign(t, testSilencer(t, am.URL), "bob", "lambda")
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	r.waitConfirmed(t)
	inc := r.waitClosed(t, r.fire(t), 20*time.Second)
	require.Equal(t, incident.OutcomeNeedsHuman, inc.Outcome)
	require.Contains(t, inc.Reason, "by bob")
	require.False(t, inc.RemediationStarted)
	require.Zero(t, countMutating(s.audit(t)))
}

// Alertmanager down never blocks containment: the create fails and is counted, containment
// goes on, and the silence is created in the background once Alertmanager is back.
func TestAlertmanagerDownDoesNotBlockContainment(t *testing.T) {
	// Alertmanager is "down": its address is held by a listener that resets every connection,
	// so no other test's server can take the port before Alertmanager starts on it.
	down, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() {
		for {
			c, err := down.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	port := down.Addr().(*net.TCPAddr).Port
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	s := startSim(t, "mu", 5, url)
	r := newRig(t, s, testConfig(t, s))
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	r.waitConfirmed(t)
	id := r.fire(t)
	inc := r.waitStep(t, id, incident.StepAwaitingRecovery, 30*time.Second)
	require.NotNil(t, inc.ContainedAt, "contained without Alertmanager")
	require.Equal(t, "", currentSilence(inc).id, "no silence while Alertmanager is down: %+v", inc.Silences)
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(r.e.m.silences.WithLabelValues(silenceFailed)) >= 1
	}, 10*time.Second, 50*time.Millisecond, "failed silence attempts are counted")

	// Alertmanager comes up on that address: the keeper creates the one silence.
	require.NoError(t, down.Close())
	testenv.StartAlertmanager(t, port, blackholeConfig)
	inc = r.waitFor(t, id, 15*time.Second, "silenced", func(inc *incident.Incident) bool {
		return currentSilence(inc).id != ""
	})
	all, err := testSilencer(t, url).List(t.Context())
	require.NoError(t, err)
	require.Len(t, all, 1)
	require.Equal(t, currentSilence(inc).id, deref(all[0].ID))
}
