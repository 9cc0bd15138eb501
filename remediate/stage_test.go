package remediate

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// Unit tests of the stages on a fake node set: milliseconds each, no simulator. The SOP's
// behaviour end to end is tested against the simulator elsewhere in the package.

var confirmed = &incident.Verdict{Kind: incident.VerdictConfirmed}

func TestStageGuarding(t *testing.T) {
	for name, tc := range map[string]struct {
		guards  fakeGuards
		outcome incident.Outcome // "" when it passes
	}{
		"passes and claims": {},
		"breaker open":      {guards: fakeGuards{breaker: BreakerOpen}, outcome: incident.OutcomeBreakerOpen},
		"paused": {guards: fakeGuards{cluster: clusterState{Paused: &PauseState{By: "bob", Reason: "maintenance"}}},
			outcome: incident.OutcomePaused},
		"same cluster in flight": {guards: fakeGuards{others: map[string]string{"inc-000009": "c1"}},
			outcome: incident.OutcomeAntiFlap},
		"another cluster in flight": {guards: fakeGuards{others: map[string]string{"inc-000009": "c2"}},
			outcome: incident.OutcomeBlastRadius},
	} {
		t.Run(name, func(t *testing.T) {
			r := newStageRig(ids(3)...)
			r.cfg.Remediation.BlastRadius.MaxClusters = 1
			g := tc.guards
			r.guards = &g
			res := r.run(t, incident.Incident{Step: incident.StepGuarding, Verdict: confirmed}, time.Second)
			if tc.outcome == "" {
				require.Equal(t, actionDone, res.action, res.msg)
				require.True(t, g.claimed, "a pass claims the cluster")
			} else {
				require.Equal(t, actionClose, res.action)
				require.Equal(t, tc.outcome, res.outcome, res.msg)
				require.Equal(t, statusSkipped, res.status)
				require.False(t, g.claimed, "a refusal claims nothing")
			}
			require.Empty(t, r.nodes.calls, "the guards never touch a node")
		})
	}
}

func TestStageContainingFresh(t *testing.T) {
	r := newStageRig(ids(5)...)
	start := time.Now()
	inc := incident.Incident{Step: incident.StepContaining, Verdict: confirmed, OpenedAt: start}
	res := r.run(t, inc, 5*time.Second)
	require.Equal(t, actionDone, res.action, res.msg)
	require.Contains(t, res.msg, "all 5 nodes suspended")
	for _, id := range ids(5) {
		require.Equal(t, 1, r.nodes.count(zmy.CmdSuspend, id), id)
		require.Equal(t, zmy.StateSuspended, r.nodes.nodes[id].raft)
	}
	// Entered in this process, nothing sent yet: no read before the suspends; the intent is
	// journaled before them.
	require.Equal(t, zmy.CmdSuspend, r.nodes.calls[0].command)
	require.Len(t, r.journal.inc.Intents, 1)
	require.Equal(t, zmy.CmdSuspend, r.journal.inc.Intents[0].Command)
	require.NotNil(t, applied(inc, res).ContainedAt)
}

// After a restart (the suspend intent is journaled) the nodes are asked first, and only the
// ones not suspended yet get a suspend: each node is suspended once across the crash.
func TestStageContainingAfterRestart(t *testing.T) {
	r := newStageRig(ids(5)...)
	for _, id := range []string{"n1", "n2", "n3"} {
		r.nodes.nodes[id].raft = zmy.StateSuspended
	}
	entered := time.Now().Add(-time.Second)
	inc := incident.Incident{Step: incident.StepContaining, Verdict: confirmed, StepEnteredAt: entered,
		Intents: []incident.Intent{{Step: incident.StepContaining, Command: zmy.CmdSuspend, Nodes: ids(5), At: entered}}}
	res := r.run(t, inc, 5*time.Second)
	require.Equal(t, actionDone, res.action, res.msg)
	require.Equal(t, zmy.CmdRaftState, r.nodes.calls[0].command, "asks before acting")
	require.Zero(t, r.nodes.count(zmy.CmdSuspend, "n1"))
	require.Zero(t, r.nodes.count(zmy.CmdSuspend, "n3"))
	require.Equal(t, 1, r.nodes.count(zmy.CmdSuspend, "n4"))
	require.Equal(t, 1, r.nodes.count(zmy.CmdSuspend, "n5"))
}

// A hung node cannot hold containment past its deadline, and the reason names it (and only it).
func TestStageContainingHungNode(t *testing.T) {
	r := newStageRig(ids(5)...)
	r.nodes.hang["n4"] = true
	res := r.run(t, incident.Incident{Step: incident.StepContaining, Verdict: confirmed}, 300*time.Millisecond)
	require.Equal(t, actionClose, res.action)
	require.Equal(t, incident.OutcomeNeedsHuman, res.outcome)
	require.Equal(t, statusTimeout, res.status)
	require.Contains(t, res.msg, "could not suspend 1 of 5 nodes")
	require.Contains(t, res.msg, "n4")
	require.NotContains(t, res.msg, "n3")
}

func TestStageArbitrating(t *testing.T) {
	const tag = "pre-recover-1"
	base := incident.Incident{Step: incident.StepArbitrating, Verdict: confirmed, SnapshotTag: tag}
	t.Run("recovers once with every snapshot", func(t *testing.T) {
		r := newStageRig(ids(5)...)
		r.nodes.setAll(zmy.StateSuspended, tag)
		r.nodes.majority = []string{"n1", "n2", "n3"}
		res := r.run(t, base, time.Second)
		require.Equal(t, actionDone, res.action, res.msg)
		require.Equal(t, 1, r.nodes.count(zmy.CmdRecover, ""))
		require.NotNil(t, applied(base, res).Recovery)
		require.Zero(t, r.nodes.count(zmy.CmdResume, ""))
	})
	t.Run("a missing snapshot stops it before recover", func(t *testing.T) {
		r := newStageRig(ids(5)...)
		r.nodes.setAll(zmy.StateSuspended, tag)
		r.nodes.nodes["n3"].snapshots = nil
		r.nodes.majority = []string{"n1", "n2", "n3"}
		res := r.run(t, base, time.Second)
		require.Equal(t, incident.OutcomeNeedsHuman, res.outcome)
		require.Contains(t, res.msg, "not held by n3")
		require.Contains(t, res.msg, "quorum recover not run")
		require.Zero(t, r.nodes.count(zmy.CmdRecover, ""))
	})
	t.Run("no tag journaled", func(t *testing.T) {
		r := newStageRig(ids(3)...)
		inc := base
		inc.SnapshotTag = ""
		res := r.run(t, inc, time.Second)
		require.Equal(t, incident.OutcomeNeedsHuman, res.outcome)
		require.Zero(t, r.nodes.count(zmy.CmdRecover, ""))
	})
	t.Run("a human took over", func(t *testing.T) {
		r := newStageRig(ids(3)...)
		r.nodes.setAll(zmy.StateSuspended, tag)
		r.humans = fakeHumans{takeover: "manual silence 42 by alice"}
		res := r.run(t, base, time.Second)
		require.Equal(t, incident.OutcomeNeedsHuman, res.outcome)
		require.Equal(t, statusSkipped, res.status)
		require.Zero(t, r.nodes.count(zmy.CmdRecover, ""))
	})
	t.Run("no strict majority is never accepted", func(t *testing.T) {
		r := newStageRig(ids(4)...)
		r.nodes.setAll(zmy.StateSuspended, tag)
		r.nodes.majority = []string{"n1", "n2"} // a tie: zmyctl is wrong, we refuse anyway
		res := r.run(t, base, time.Second)
		require.Equal(t, incident.OutcomeNeedsHuman, res.outcome)
		require.Contains(t, res.msg, "not a strict majority")
		require.Nil(t, applied(base, res).Recovery)
	})
	t.Run("an unreachable node is skipped for the next", func(t *testing.T) {
		r := newStageRig(ids(3)...)
		r.nodes.setAll(zmy.StateSuspended, tag)
		r.nodes.majority = []string{"n2", "n3"}
		r.nodes.recoverFail = map[string]error{"n1": zmy.ErrUnreachable}
		res := r.run(t, base, time.Second)
		require.Equal(t, actionDone, res.action, res.msg)
		require.Equal(t, 1, r.nodes.count(zmy.CmdRecover, "n1"))
		require.Equal(t, 1, r.nodes.count(zmy.CmdRecover, "n2"))
		require.Zero(t, r.nodes.count(zmy.CmdRecover, "n3"), "the first answer is the cluster's")
	})
	t.Run("a refusal is the cluster's answer", func(t *testing.T) {
		r := newStageRig(ids(3)...)
		r.nodes.setAll(zmy.StateSuspended, tag)
		r.nodes.recoverFail = map[string]error{"n1": zmy.ErrNotConverged}
		res := r.run(t, base, time.Second)
		require.Equal(t, incident.OutcomeNeedsHuman, res.outcome)
		require.Equal(t, 1, r.nodes.count(zmy.CmdRecover, ""))
	})
}

func TestStageResumingNeedsRecovery(t *testing.T) {
	r := newStageRig(ids(3)...)
	r.nodes.setAll(zmy.StateSuspended)
	res := r.run(t, incident.Incident{Step: incident.StepResuming, Verdict: confirmed}, time.Second)
	require.Equal(t, incident.OutcomeFailed, res.outcome)
	require.Zero(t, r.nodes.count(zmy.CmdResume, ""))

	inc := incident.Incident{Step: incident.StepResuming, Verdict: confirmed, Recovery: &zmy.RecoverResult{Majority: ids(2)}}
	res = r.run(t, inc, time.Second)
	require.Equal(t, actionDone, res.action, res.msg)
	require.Equal(t, 3, r.nodes.count(zmy.CmdResume, ""))
}
