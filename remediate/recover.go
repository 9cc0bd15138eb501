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
	if err == nil && g.At.IsZero() && ctx.Err() != nil {
		// No reading at all before the deadline; a reading cut short keeps what it names
		// (etcd endpoints, nodes whose netcheck did not answer).
		err = ctx.Err()
	}
	sc.failpoint("awaiting_recovery:polled")
	need := requireApproval(sc.cfg, sc.cluster)
	a := currentApproval(sc.inc)
	now := sc.now()
	d, reason := decideGate(g, err, a != nil, need, sc.deadline, now)
	st := gateStatus(g, err, a != nil, need, sc.inc.StepEnteredAt, sc.deadline, now)
	var record func(*incident.Incident)
	if !sameGate(sc.inc.Gate, st) {
		record = func(inc *incident.Incident) { inc.Gate = &st }
	}
	switch d {
	case gateOpen:
		note := "gate open: network converged, etcd healthy"
		if need {
			note += fmt.Sprintf(", approved by %s (%s)", a.By, a.Reason)
		}
		return Done(note).With(func(inc *incident.Incident) { inc.Gate = &st })
	case gateTimeout:
		return CloseTimeout(incident.OutcomeNeedsHuman, reason).With(record)
	}
	return Requeue(time.Duration(sc.cfg.Remediation.GatePoll), "gate closed: "+reason).With(record)
}

// stageArbitrating runs `quorum recover --auto` (its requirements — no human took over, every
// node still suspended by this runbook, every node holds the incident's snapshot — were re-read
// just before) and only accepts an answer naming one strict majority. Anything else stops the
// runbook for a human: never a resume.
//
// Recover is not idempotent: it is journaled as intended, with the highest term the nodes
// reported, before it is sent. If this step finds its own intent (a restart with a recover in
// flight), it asks the nodes whether a recover landed since, records that one, and never sends
// a second.
func stageArbitrating(ctx context.Context, sc *stageCtx) Result {
	ids := sc.nodeIDs()
	if in, ok := sc.intent(zmy.CmdRecover); ok {
		landed, last := recoverLanded(sc.states, in.Term)
		switch {
		case landed && last != nil:
			ok, reason := decideRecover(&last.RecoverResult, nil, ids)
			if !ok {
				return handOver("the quorum recover sent before a restart landed, but: " + reason)
			}
			rr := last.RecoverResult
			return Done("the quorum recover sent before a restart had landed: " + reason).With(func(inc *incident.Incident) {
				inc.Recovery = &rr
			})
		case landed:
			return handOver(fmt.Sprintf("a quorum recover was sent before a restart and the nodes' term moved past %d, so it landed, "+
				"but they do not report its result (last_recover); not sent again: check the majority with zmyctl before resuming", in.Term))
		}
		// Not landed (the node dropped it with our dead zmyctl): sending it now is the first.
	}
	if err := sc.intend(ctx, zmy.CmdRecover, nil, highestTerm(sc.states)); err != nil {
		return Retry(retryRead, "journal the recover intent: "+err.Error())
	}
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
	ok, reason := decideRecover(rr, err, ids)
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
		if err := sc.intend(ctx, zmy.CmdResume, todo, 0); err != nil {
			return Retry(retryRead, "journal the resume intent: "+err.Error())
		}
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
