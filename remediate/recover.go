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
// gate_timeout deadline, then needs_human.
func stageAwaitingRecovery(ctx context.Context, sc *stageCtx) result {
	g, err := sc.e.p.RecoveryGate(ctx, sc.inc.Cluster)
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	sc.e.failpoint("awaiting_recovery:polled")
	need := requireApproval(sc.cfg, sc.cluster)
	d, reason := decideGate(g, err, len(sc.inc.Approvals) > 0, need, sc.deadline, sc.e.now())
	switch d {
	case gateOpen:
		note := "gate open: network converged, etcd healthy"
		if need {
			a := sc.inc.Approvals[len(sc.inc.Approvals)-1]
			note += fmt.Sprintf(", approved by %s (%s)", a.By, a.Reason)
		}
		return advance(incident.StepArbitrating, note)
	case gateTimeout:
		return result{outcome: incident.OutcomeNeedsHuman, reason: reason, label: resultTimeout}
	}
	return retry(time.Duration(sc.cfg.Remediation.GatePoll), "", "gate closed: "+reason)
}

// stageArbitrating runs `quorum recover --auto`, only once every node holds the incident's
// snapshot (re-checked right before), and only accepts an answer naming one strict majority.
// Anything else stops the runbook for a human: never a resume.
func stageArbitrating(ctx context.Context, sc *stageCtx) result {
	if t := sc.e.checkTakeover(ctx, sc); t != "" {
		return result{outcome: incident.OutcomeNeedsHuman, reason: "a human took over: " + t, label: resultSkipped}
	}
	ids := sc.nodeIDs()
	if sc.inc.SnapshotTag == "" {
		return result{outcome: incident.OutcomeNeedsHuman, label: resultError,
			reason: "no pre-recover snapshot tag journaled; quorum recover not run"}
	}
	lists, errs := sc.snapshotLists(ctx, sc.nodes(nil), prioRecovery)
	if missing := missingSnapshot(ids, lists, sc.inc.SnapshotTag); len(missing) > 0 {
		return result{outcome: incident.OutcomeNeedsHuman, label: resultError, reason: fmt.Sprintf(
			"snapshot %s not held by %s; quorum recover not run", sc.inc.SnapshotTag, describe(missing, errs))}
	}
	var rr *zmy.RecoverResult
	var err error
	for _, n := range sc.nodes(nil) {
		if err = sc.e.sem.Acquire(ctx, prioRecovery); err != nil {
			break
		}
		var res *zmy.Result
		rr, res, err = sc.drv.Recover(ctx, n)
		sc.e.sem.Release()
		sc.record(res, err)
		// Only an unreachable node is worth trying another one for; any answer from a
		// node, including a refusal, is the cluster's answer.
		if !errors.Is(err, zmy.ErrUnreachable) {
			break
		}
	}
	ok, reason := decideRecover(rr, err, ids)
	if !ok {
		return result{outcome: incident.OutcomeNeedsHuman, reason: reason, label: resultError}
	}
	sc.e.failpoint("arbitrating:recovered")
	res := advance(incident.StepResuming, reason)
	res.apply = func(inc *incident.Incident) { inc.Recovery = rr }
	return res
}

// stageResuming runs `raft resume` on every node still suspended — only after a successful
// recover was journaled for this incident — and verifies none is left suspended.
func stageResuming(ctx context.Context, sc *stageCtx) result {
	if sc.inc.Recovery == nil {
		// Unreachable by construction; a safety rule is worth the check.
		return result{outcome: incident.OutcomeFailed, label: resultError,
			reason: "refusing raft resume: no successful quorum recover journaled for this incident"}
	}
	if t := sc.e.checkTakeover(ctx, sc); t != "" {
		return result{outcome: incident.OutcomeNeedsHuman, reason: "a human took over: " + t, label: resultSkipped}
	}
	ids := sc.nodeIDs()
	states, errs := sc.raftStates(ctx, sc.nodes(nil), prioRecovery)
	var todo []string
	for _, id := range ids {
		if s, ok := states[id]; !ok || s == zmy.StateSuspended {
			todo = append(todo, id)
		}
	}
	if len(todo) > 0 {
		var once sync.Once
		sc.each(ctx, sc.nodes(todo), prioRecovery, func(ctx context.Context, n config.NodeConfig) error {
			_, res, err := sc.drv.Resume(ctx, n)
			sc.record(res, err)
			once.Do(func() { sc.e.failpoint("resuming:mid") })
			return err
		})
		states, errs = sc.raftStates(ctx, sc.nodes(todo), prioRecovery)
	}
	var left []string
	for _, id := range todo {
		if s, ok := states[id]; !ok || s == zmy.StateSuspended {
			left = append(left, id)
		}
	}
	if len(left) > 0 {
		return retry(500*time.Millisecond, resultError, "still suspended or unknown: "+describe(left, errs))
	}
	return advance(incident.StepVerifying, fmt.Sprintf("all %d nodes resumed", len(ids)))
}

// stageVerifying probes again until the cluster is healthy (quorum up, one leader, shard
// indexes equal) or verify_timeout passes.
func stageVerifying(ctx context.Context, sc *stageCtx) result {
	v, err := sc.e.p.Confirm(ctx, sc.inc.Cluster)
	if ctx.Err() != nil && err == nil {
		err = ctx.Err()
	}
	done, outcome, reason := decideVerify(v, err, sc.deadline, sc.e.now())
	if !done {
		poll := min(time.Duration(sc.cfg.Remediation.GatePoll), time.Second)
		return retry(poll, "", reason)
	}
	res := end(outcome, reason)
	if outcome == incident.OutcomeNeedsHuman {
		res.label = resultTimeout
	}
	return res
}

// checkTakeover looks for a human's silence right before a mutating step; an unreachable
// Alertmanager does not block (the keeper keeps looking).
func (e *Engine) checkTakeover(ctx context.Context, sc *stageCtx) string {
	if sc.sil == nil {
		return ""
	}
	f, err := sc.sil.Foreign(ctx, sc.inc)
	if err != nil || f == nil {
		return e.takeoverOf(sc.r)
	}
	return e.takeover(ctx, sc.r, sc.inc.ID, f)
}
