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
	require.Contains(t, res.msg, "could not verify 1 of 5 nodes suspended within the golden window (4 verified)")
	require.Contains(t, res.msg, "n4 (suspend sent 1×")
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
		r.nodes.setAll(zmy.StateSuspended)
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

// Recover is never sent twice: after a restart with its intent journaled, the nodes are asked
// whether one landed since, and that one is recorded with what it really discarded.
func TestStageArbitratingAfterARestart(t *testing.T) {
	const tag = "pre-recover-1"
	entered := time.Now().Add(-time.Second)
	inc := incident.Incident{Step: incident.StepArbitrating, Verdict: confirmed, SnapshotTag: tag, StepEnteredAt: entered,
		Intents: []incident.Intent{{Step: incident.StepArbitrating, Command: zmy.CmdRecover, At: entered, Term: 3}}}
	t.Run("landed: recorded, not sent again", func(t *testing.T) {
		r := newStageRig(ids(5)...)
		r.nodes.setAll(zmy.StateSuspended, tag)
		r.nodes.majority = []string{"n1", "n2", "n3"}
		// The recover the crashed process sent: the nodes moved to term 4 and remember it.
		_, _, err := r.nodes.Recover(zmy.WithActor(t.Context(), rigActor.String()), r.cfg.Clusters[0].Nodes[0])
		require.NoError(t, err)
		res := r.run(t, inc, time.Second)
		require.Equal(t, actionDone, res.action, res.msg)
		require.Contains(t, res.msg, "sent before a restart had landed")
		require.Equal(t, 1, r.nodes.count(zmy.CmdRecover, ""), "no second recover")
		got := applied(inc, res).Recovery
		require.NotNil(t, got)
		require.Equal(t, 31, got.Discarded, "what the first recover discarded is on record")
	})
	t.Run("not landed: sent now, once", func(t *testing.T) {
		r := newStageRig(ids(5)...)
		r.nodes.setAll(zmy.StateSuspended, tag)
		r.nodes.majority = []string{"n1", "n2", "n3"}
		res := r.run(t, inc, time.Second)
		require.Equal(t, actionDone, res.action, res.msg)
		require.Equal(t, 1, r.nodes.count(zmy.CmdRecover, ""))
	})
	t.Run("landed, result not reported: a human decides", func(t *testing.T) {
		r := newStageRig(ids(5)...)
		r.nodes.setAll(zmy.StateSuspended, tag)
		r.nodes.majority = []string{"n1", "n2", "n3"}
		r.nodes.hideLast = true
		_, _, err := r.nodes.Recover(t.Context(), r.cfg.Clusters[0].Nodes[0])
		require.NoError(t, err)
		res := r.run(t, inc, time.Second)
		require.Equal(t, incident.OutcomeNeedsHuman, res.outcome)
		require.Contains(t, res.msg, "not sent again")
		require.Equal(t, 1, r.nodes.count(zmy.CmdRecover, ""))
	})
}

// Before every mutating step the nodes are read again: a node made writable under the
// runbook is re-contained once, then handed to a human; a node suspended by another responder,
// or one that cannot be read, stops it. Recover never runs over a writable node.
func TestRequireSuspended(t *testing.T) {
	const tag = "pre-recover-1"
	base := incident.Incident{Step: incident.StepArbitrating, Verdict: confirmed, SnapshotTag: tag}
	setup := func() *stageRig {
		r := newStageRig(ids(5)...)
		r.nodes.setAll(zmy.StateSuspended, tag)
		r.nodes.majority = []string{"n1", "n2", "n3"}
		return r
	}
	t.Run("a node resumed by hand is re-contained", func(t *testing.T) {
		r := setup()
		r.nodes.nodes["n2"].raft = "leader"
		res := r.run(t, base, time.Second)
		require.Equal(t, actionGoto, res.action, res.msg)
		require.Equal(t, incident.StepContaining, res.to)
		require.Contains(t, res.msg, "n2 (leader)")
		after := applied(base, res)
		require.Equal(t, 1, after.Recontained)
		require.Empty(t, after.SnapshotTag, "a new snapshot is taken")
		require.NotNil(t, after.RecontainedAt)
		require.Zero(t, r.nodes.count(zmy.CmdRecover, ""))
	})
	t.Run("the second time is for a human", func(t *testing.T) {
		r := setup()
		r.nodes.nodes["n4"].raft = "follower"
		inc := base
		inc.Recontained = 1
		res := r.run(t, inc, time.Second)
		require.Equal(t, incident.OutcomeNeedsHuman, res.outcome)
		require.Contains(t, res.msg, "n4 (follower)")
		require.Contains(t, res.msg, "quorum recover not run")
		require.Zero(t, r.nodes.count(zmy.CmdRecover, ""))
	})
	t.Run("suspended by another responder", func(t *testing.T) {
		r := setup()
		r.nodes.nodes["n3"].suspendedBy = "r2/inc-000001/jother"
		res := r.run(t, base, time.Second)
		require.Equal(t, incident.OutcomeNeedsHuman, res.outcome)
		require.Contains(t, res.msg, `n3 by "r2/inc-000001/jother"`)
		require.Zero(t, r.nodes.count(zmy.CmdRecover, ""))
	})
	t.Run("a failover, or an earlier incident, of the same responder is not another", func(t *testing.T) {
		r := setup()
		r.nodes.nodes["n3"].suspendedBy = "r2/inc-000001/jtest.7"
		r.nodes.nodes["n4"].suspendedBy = "r1/inc-000000/jtest"
		res := r.run(t, base, time.Second)
		require.Equal(t, actionDone, res.action, res.msg)
	})
	t.Run("an unreadable node is named", func(t *testing.T) {
		r := setup()
		r.nodes.readFail = map[string]error{"n5": zmy.ErrMalformed}
		res := r.run(t, base, time.Second)
		require.Equal(t, incident.OutcomeNeedsHuman, res.outcome)
		require.Contains(t, res.msg, "cannot prove every node is still suspended: n5")
		require.Equal(t, 2, r.nodes.count(zmy.CmdRaftState, "n5"), "asked once more before concluding")
		require.Zero(t, r.nodes.count(zmy.CmdRecover, ""))
	})
}

// An approval given before a re-containment does not open the gate of the world after it.
func TestApprovalBeforeRecontainmentDoesNotCount(t *testing.T) {
	at := time.Now()
	inc := &incident.Incident{Approvals: []incident.Approval{{By: "alice", At: at}}}
	require.NotNil(t, currentApproval(inc))
	later := at.Add(time.Second)
	inc.RecontainedAt = &later
	require.Nil(t, currentApproval(inc))
	inc.Approvals = append(inc.Approvals, incident.Approval{By: "bob", At: later.Add(time.Second)})
	require.Equal(t, "bob", currentApproval(inc).By)
}

// A node whose raft state cannot be read gets at most three suspends, and the reason says what
// was sent and what was read, counting what actually happened.
func TestStageContainingUnreadableState(t *testing.T) {
	r := newStageRig(ids(5)...)
	r.nodes.readFail = map[string]error{"n3": zmy.ErrMalformed}
	res := r.run(t, incident.Incident{Step: incident.StepContaining, Verdict: confirmed}, 2*time.Second)
	require.Equal(t, incident.OutcomeNeedsHuman, res.outcome)
	require.Contains(t, res.msg, "could not verify 1 of 5 nodes suspended within the golden window (4 verified)")
	require.Contains(t, res.msg, "n3 (suspend sent 3×, answered suspended; raft state: ")
	require.Equal(t, maxSuspends, r.nodes.count(zmy.CmdSuspend, "n3"))
	require.Equal(t, 1, r.nodes.count(zmy.CmdSuspend, "n1"))
}

// Containment that finds a node suspended by another responder stops: two responders on one
// cluster must not both go on to recover.
func TestStageContainingSeesAnotherRunbook(t *testing.T) {
	r := newStageRig(ids(5)...)
	r.nodes.nodes["n2"].raft = zmy.StateSuspended
	r.nodes.nodes["n2"].suspendedBy = "r1/inc-000001/jsomeoneelse"
	res := r.run(t, incident.Incident{Step: incident.StepContaining, Verdict: confirmed}, 2*time.Second)
	require.Equal(t, incident.OutcomeNeedsHuman, res.outcome)
	require.Contains(t, res.msg, "another responder or a human is acting on this cluster")
	require.Contains(t, res.msg, "n2")
}

// The gate's deadline passing while etcd does not answer ends the incident with a reason that
// names etcd and its endpoint, not a bare "context deadline exceeded".
func TestGateTimeoutNamesWhatItWaitedFor(t *testing.T) {
	r := newStageRig(ids(3)...)
	r.prober = slowGate{reading: incident.Gate{NetworkConverged: true, EtcdChecked: true, At: time.Now(),
		Reason: "etcd: unhealthy etcd endpoints: http://127.0.0.1:2379: status: context deadline exceeded"}}
	res := r.run(t, incident.Incident{Step: incident.StepAwaitingRecovery, Verdict: confirmed}, 100*time.Millisecond)
	require.Equal(t, incident.OutcomeNeedsHuman, res.outcome)
	require.Equal(t, statusTimeout, res.status)
	require.Contains(t, res.msg, "recovery gate timed out: etcd: unhealthy etcd endpoints: http://127.0.0.1:2379")
}
