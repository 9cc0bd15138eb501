package remediate

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// Before every mutating step after containment the runbook re-reads what the step depends on,
// and sends nothing if the world moved in between: a human's silence, a node made writable
// again (by a human, a crash, another tool) or suspended by another responder. Each case runs
// the step with everything else in order, so a requirement dropped from a step fails here.
func TestMutatingStepsRereadBeforeActing(t *testing.T) {
	const tag = "pre-recover-1"
	steps := []struct {
		step     incident.Step
		command  string // the mutation the step sends
		inc      incident.Incident
		suspends bool // the step requires every node still suspended by this runbook
	}{
		{step: incident.StepSnapshotting, command: zmy.CmdSnapshotSave, suspends: true,
			inc: incident.Incident{Step: incident.StepSnapshotting, Verdict: confirmed}},
		{step: incident.StepArbitrating, command: zmy.CmdRecover, suspends: true,
			inc: incident.Incident{Step: incident.StepArbitrating, Verdict: confirmed, SnapshotTag: tag}},
		{step: incident.StepResuming, command: zmy.CmdResume,
			inc: incident.Incident{Step: incident.StepResuming, Verdict: confirmed, SnapshotTag: tag,
				Recovery: &zmy.RecoverResult{Majority: []string{"n1", "n2", "n3"}}}},
	}
	setup := func(snapshots ...string) *stageRig {
		r := newStageRig(ids(5)...)
		r.nodes.setAll(zmy.StateSuspended, snapshots...)
		r.nodes.majority = []string{"n1", "n2", "n3"}
		return r
	}
	for _, s := range steps {
		var snaps []string
		if s.inc.SnapshotTag != "" {
			snaps = []string{tag}
		}
		t.Run(string(s.step)+"/in order it acts", func(t *testing.T) {
			r := setup(snaps...)
			res := r.run(t, s.inc, time.Second)
			require.Equal(t, actionDone, res.action, res.msg)
			require.NotZero(t, r.nodes.count(s.command, ""), "the control case must send %s", s.command)
		})
		t.Run(string(s.step)+"/a human took over", func(t *testing.T) {
			r := setup(snaps...)
			r.humans = fakeHumans{takeover: "manual silence 42 by alice"}
			res := r.run(t, s.inc, time.Second)
			require.Equal(t, incident.OutcomeNeedsHuman, res.outcome, res.msg)
			require.Zero(t, r.nodes.count(s.command, ""))
		})
		if !s.suspends {
			continue
		}
		t.Run(string(s.step)+"/a node made writable is re-contained", func(t *testing.T) {
			r := setup(snaps...)
			r.nodes.nodes["n4"].raft = "follower"
			res := r.run(t, s.inc, time.Second)
			require.Equal(t, actionGoto, res.action, res.msg)
			require.Equal(t, incident.StepContaining, res.to)
			require.Contains(t, res.msg, "n4 (follower)")
			require.Zero(t, r.nodes.count(s.command, ""))
		})
		t.Run(string(s.step)+"/a node suspended by another responder", func(t *testing.T) {
			r := setup(snaps...)
			r.nodes.nodes["n2"].suspendedBy = "r2/inc-000001/jother"
			res := r.run(t, s.inc, time.Second)
			require.Equal(t, incident.OutcomeNeedsHuman, res.outcome, res.msg)
			require.Contains(t, res.msg, "n2")
			require.Zero(t, r.nodes.count(s.command, ""))
		})
	}
}

// Resume re-reads every node just before sending: a node already resumed (by the run a crash
// cut short, or by a human) is not sent a second resume.
func TestStageResumingSkipsResumedNodes(t *testing.T) {
	r := newStageRig(ids(3)...)
	r.nodes.setAll(zmy.StateSuspended)
	r.nodes.nodes["n2"].raft = "follower"
	inc := incident.Incident{Step: incident.StepResuming, Verdict: confirmed, Recovery: &zmy.RecoverResult{Majority: ids(2)}}
	res := r.run(t, inc, time.Second)
	require.Equal(t, actionDone, res.action, res.msg)
	require.Zero(t, r.nodes.count(zmy.CmdResume, "n2"))
	require.Equal(t, 1, r.nodes.count(zmy.CmdResume, "n1"))
	require.Equal(t, 1, r.nodes.count(zmy.CmdResume, "n3"))
}

// Containment re-entered after a restart or a failover (its suspend intent journaled) asks
// Alertmanager before suspending again: the process that silenced is gone, and a human may
// have taken over, and resumed nodes by hand, in between. The first entry needs no second
// ask: the silencing step asked just before.
func TestStageContainingAfterRestartAsksForAHuman(t *testing.T) {
	entered := time.Now().Add(-time.Second)
	inc := incident.Incident{Step: incident.StepContaining, Verdict: confirmed, StepEnteredAt: entered,
		Intents: []incident.Intent{{Step: incident.StepContaining, Command: zmy.CmdSuspend, Nodes: ids(3), At: entered}}}
	r := newStageRig(ids(3)...)
	r.nodes.setAll(zmy.StateSuspended)
	r.nodes.nodes["n2"].raft = "follower" // resumed by the human who took over
	r.humans = fakeHumans{takeover: "manual silence 42 by alice"}
	res := r.run(t, inc, time.Second)
	require.Equal(t, incident.OutcomeNeedsHuman, res.outcome, res.msg)
	require.Equal(t, statusSkipped, res.status)
	require.Zero(t, r.nodes.count(zmy.CmdSuspend, ""), "nothing suspended under a human's silence")
}
