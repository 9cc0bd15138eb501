package remediate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// stageAwaitingRecovery is the recovery gate (SOP-ZMY-005): network converged, etcd healthy,
// and a human approval unless require_approval is off. It polls every gate_poll until the
// step's deadline (gate_timeout), then needs_human.
func stageAwaitingRecovery(ctx context.Context, sc *stageCtx) Result {
	g, err := sc.prober.RecoveryGate(ctx, sc.inc.Cluster)
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	sc.failpoint("awaiting_recovery:polled")
	need := requireApproval(sc.cfg, sc.cluster)
	d, reason := decideGate(g, err, len(sc.inc.Approvals) > 0, need, sc.deadline, sc.now())
	switch d {
	case gateOpen:
		note := "gate open: network converged, etcd healthy"
		if need {
			a := sc.inc.Approvals[len(sc.inc.Approvals)-1]
			note += fmt.Sprintf(", approved by %s (%s)", a.By, a.Reason)
		}
		return Done(note)
	case gateTimeout:
		return CloseTimeout(incident.OutcomeNeedsHuman, reason)
	}
	return Requeue(time.Duration(sc.cfg.Remediation.GatePoll), "gate closed: "+reason)
}

// stageArbitrating runs `quorum recover --auto` (its requirements — every node holds the
// incident's snapshot, no human took over — were re-read just before) and only accepts an
// answer naming one strict majority. Anything else stops the runbook for a human: never a
// resume.
func stageArbitrating(ctx context.Context, sc *stageCtx) Result {
	var rr *zmy.RecoverResult
	var err error
	for _, n := range sc.nodeConfigs(nil) {
		if err = sc.slots.Acquire(ctx, prioRecovery); err != nil {
			break
		}
		var res *zmy.Result
		rr, res, err = sc.driver.Recover(ctx, n)
		sc.slots.Release()
		sc.record(res, err)
		// Only an unreachable node is worth trying another one for; any answer from a
		// node, including a refusal, is the cluster's answer.
		if !errors.Is(err, zmy.ErrUnreachable) {
			break
		}
	}
	ok, reason := decideRecover(rr, err, sc.nodeIDs())
	if !ok {
		return handOver(reason)
	}
	sc.failpoint("arbitrating:recovered")
	return Done(reason).With(func(inc *incident.Incident) { inc.Recovery = rr })
}

// stageResuming runs `raft resume` on every node still suspended — only after a successful
// recover was journaled for this incident (its requirement) — and verifies none is left
// suspended.
func stageResuming(ctx context.Context, sc *stageCtx) Result {
	ids := sc.nodeIDs()
	states, errs := sc.raftStates(ctx, sc.nodeConfigs(nil), prioRecovery)
	var todo []string
	for _, id := range ids {
		if s, ok := states[id]; !ok || s == zmy.StateSuspended {
			todo = append(todo, id)
		}
	}
	if len(todo) > 0 {
		var once sync.Once
		sc.each(ctx, sc.nodeConfigs(todo), prioRecovery, func(ctx context.Context, n config.NodeConfig) error {
			_, res, err := sc.driver.Resume(ctx, n)
			sc.record(res, err)
			once.Do(func() { sc.failpoint("resuming:mid") })
			return err
		})
		states, errs = sc.raftStates(ctx, sc.nodeConfigs(todo), prioRecovery)
	}
	var left []string
	for _, id := range todo {
		if s, ok := states[id]; !ok || s == zmy.StateSuspended {
			left = append(left, id)
		}
	}
	if len(left) > 0 {
		return Retry(retryResume, "still suspended or unknown: "+describe(left, errs))
	}
	return Done(fmt.Sprintf("all %d nodes resumed", len(ids)))
}

// stageVerifying probes again until the cluster is healthy (quorum up, one leader, shard
// indexes equal) or verify_timeout passes.
func stageVerifying(ctx context.Context, sc *stageCtx) Result {
	v, err := sc.prober.Confirm(ctx, sc.inc.Cluster)
	if ctx.Err() != nil && err == nil {
		err = ctx.Err()
	}
	done, outcome, reason := decideVerify(v, err, sc.deadline, sc.now())
	if !done {
		poll := min(time.Duration(sc.cfg.Remediation.GatePoll), maxVerifyPoll)
		return Requeue(poll, reason)
	}
	if outcome == incident.OutcomeNeedsHuman {
		return CloseTimeout(outcome, reason)
	}
	return Close(outcome, reason)
}
