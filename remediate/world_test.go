package remediate

import (
	"encoding/json"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/sim"
)

// A human resumes a node by hand while the runbook waits at the gate. Before recovering, the
// runbook reads every node again, finds it writable, re-contains it (new snapshots, and the
// approval given before no longer counts), and recovers only once every node is suspended
// again: no recover over a writable node, no discarded entry without a snapshot.
func TestNodeResumedByHandIsRecontained(t *testing.T) {
	s := startSim(t, "sigma", 5, "")
	r := newRig(t, s, testConfig(t, s))
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	r.waitConfirmed(t)
	id := r.fire(t)
	inc := r.waitStep(t, id, incident.StepAwaitingRecovery, 30*time.Second)
	firstTag := inc.SnapshotTag
	require.NotEmpty(t, firstTag)

	// The outsider's hand: n4, in the minority, takes writes again.
	s.ctl(t, r.cfg, "n4", "raft", "resume")
	s.fault(t, "heal")
	_, err := r.e.Approve(t.Context(), id, approval("alice"))
	require.NoError(t, err)

	inc = r.waitFor(t, id, 30*time.Second, "re-contained and back at the gate", func(inc *incident.Incident) bool {
		return inc.Recontained == 1 && inc.Step == incident.StepAwaitingRecovery || !inc.Open()
	})
	require.True(t, inc.Open(), "%s: %s", inc.Outcome, inc.Reason)
	require.NotEqual(t, firstTag, inc.SnapshotTag, "new snapshots after the node took writes")
	require.Nil(t, inc.Recovery, "no recover over a writable node")
	requireTimeline(t, inc, "writable again before quorum recover: n4")

	// alice's approval was of the world before; the gate waits for a new one.
	inc = r.waitFor(t, id, 20*time.Second, "the gate asking for a new approval", func(inc *incident.Incident) bool {
		for _, ev := range inc.Timeline {
			if ev.At.After(*inc.RecontainedAt) && strings.Contains(ev.Message, "waiting for a human approval") {
				return true
			}
		}
		return !inc.Open()
	})
	require.Equal(t, incident.StepAwaitingRecovery, inc.Step, "%s: %s", inc.Outcome, inc.Reason)
	_, err = r.e.Approve(t.Context(), id, approval("bob"))
	require.NoError(t, err)
	inc = r.waitClosed(t, id, 40*time.Second)
	require.Equal(t, incident.OutcomeRecovered, inc.Outcome, inc.Reason)

	// The only violation is the human's own resume; none is the runbook's.
	for _, v := range violations(t, s) {
		require.Equal(t, sim.KindResumeBeforeRecover, v.Kind, "%+v", v)
		require.Equal(t, "n4", v.Node)
	}
	recovers := 0
	for _, e := range s.audit(t) {
		if e.Exit == 0 && isCmd(e, "quorum", "recover") {
			recovers++
		}
	}
	require.Equal(t, 1, recovers)
}

// Two responders with their own journals watch the same cluster and both get the alert. The
// nodes say who suspended them: the one that finds nodes suspended by the other stops with
// needs_human instead of acting, so at most one recover runs and no invariant breaks.
func TestTwoRespondersOnOneCluster(t *testing.T) {
	s := startSim(t, "tau", 5, "")
	cfg := testConfig(t, s)
	cfg.Remediation.RequireApproval = false
	a := newRig(t, s, cfg)
	b := newRig(t, s, cfg)
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	a.waitConfirmed(t)

	var ida, idb string
	var wg sync.WaitGroup
	wg.Go(func() { ida = a.fire(t) })
	wg.Go(func() { idb = b.fire(t) })
	wg.Wait()
	var healOnce sync.Once
	heal := func(inc *incident.Incident) bool {
		if inc.Step == incident.StepAwaitingRecovery {
			healOnce.Do(func() { s.fault(t, "heal") })
		}
		return !inc.Open()
	}
	incA := a.waitFor(t, ida, 60*time.Second, "closed", heal)
	incB := b.waitFor(t, idb, 60*time.Second, "closed", heal)

	stopped := 0
	for _, inc := range []*incident.Incident{incA, incB} {
		if inc.Outcome == incident.OutcomeNeedsHuman && strings.Contains(inc.Reason, "another responder or a human is acting on this cluster") {
			stopped++
		}
	}
	require.GreaterOrEqual(t, stopped, 1, "a: %s %s; b: %s %s", incA.Outcome, incA.Reason, incB.Outcome, incB.Reason)
	recovers := 0
	for _, e := range s.audit(t) {
		if e.Exit == 0 && isCmd(e, "quorum", "recover") {
			recovers++
		}
	}
	require.LessOrEqual(t, recovers, 1)
	s.requireNoViolations(t)
}

// requireTimeline finds a timeline event containing text.
func requireTimeline(t *testing.T, inc *incident.Incident, text string) {
	t.Helper()
	for _, ev := range inc.Timeline {
		if strings.Contains(ev.Message, text) {
			return
		}
	}
	t.Fatalf("no timeline event says %q", text)
}

// ctl runs `zmysim ctl` on one node, as an operator would by hand (no ZMY_ACTOR).
func (s *simCluster) ctl(t *testing.T, cfg *config.Config, node string, args ...string) {
	t.Helper()
	for _, n := range cfg.Cluster(s.name).Nodes {
		if n.ID == node {
			out, err := exec.Command(zmysimBin, append([]string{"ctl", "--endpoint", n.Admin}, args...)...).CombinedOutput()
			require.NoError(t, err, "zmysim ctl %s %v: %s", node, args, out)
			return
		}
	}
	t.Fatalf("no node %s", node)
}

// violations is `zmysim invariants`, whatever it found.
func violations(t *testing.T, s *simCluster) []sim.Violation {
	t.Helper()
	out, _ := s.zmysim(t, "invariants") // exits 1 when it found any
	var vs []sim.Violation
	require.NoError(t, json.Unmarshal(out, &vs), "%s", out)
	return vs
}
