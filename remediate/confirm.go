package remediate

import (
	"context"
	"time"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// The steps before anything is mutated: received, confirming, guarding. Each re-checks whether
// the alert resolved meanwhile (self_healed) because until containment starts, stopping is free.

func stageReceived(_ context.Context, sc *stageCtx) result {
	if selfHealed(sc.inc) {
		return end(incident.OutcomeSelfHealed, "the alert resolved before anything was mutated")
	}
	return advance(incident.StepConfirming, "")
}

// stageConfirming runs the responder's own probes: the alert alone is never trusted.
func stageConfirming(ctx context.Context, sc *stageCtx) result {
	if selfHealed(sc.inc) {
		return end(incident.OutcomeSelfHealed, "the alert resolved before anything was mutated")
	}
	v, err := sc.e.p.Confirm(ctx, sc.inc.Cluster)
	if err != nil {
		return retry(time.Second, resultError, "confirm: "+err.Error())
	}
	proceed, outcome, reason := afterVerdict(v)
	res := advance(incident.StepGuarding, "verdict confirmed: "+v.Reason)
	if !proceed {
		res = end(outcome, reason)
	}
	plan := sc.e.PlanSteps(sc.cfg, *sc.cluster)
	res.apply = func(inc *incident.Incident) {
		inc.Verdict = v
		if proceed {
			inc.Plan = plan
		}
	}
	return res
}

// stageGuarding runs the guards. The decision and the claim on the cluster happen under the
// engine's lock so that two incidents cannot both pass blast radius at once.
func stageGuarding(ctx context.Context, sc *stageCtx) result {
	e, inc := sc.e, sc.inc
	if selfHealed(inc) {
		return end(incident.OutcomeSelfHealed, "the alert resolved before anything was mutated")
	}
	bs, err := e.brk.State(ctx, inc.Cluster)
	if err != nil {
		return retry(time.Second, resultError, "read breaker: "+err.Error())
	}
	cs, err := loadClusterState(ctx, e.j, inc.Cluster)
	if err != nil {
		return retry(time.Second, resultError, err.Error())
	}
	in := guardInput{
		Now: e.now(), Cluster: inc.Cluster, Paused: cs.Paused, Breaker: bs,
		TotalClusters: len(sc.cfg.Clusters), LastFinished: cs.LastRemediationAt,
		LastIncident: cs.LastRemediationIncident, DryRun: dryRun(sc.cfg, sc.cluster), Cfg: sc.cfg.Remediation,
		Remediating: map[string]string{},
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, o := range e.runners {
		if id != inc.ID && o.claimed {
			in.Remediating[id] = o.cluster
		}
	}
	name, ref := runGuards(in)
	if ref != nil {
		res := end(ref.Outcome, ref.Reason)
		res.note = "guard " + name + " refused"
		return res
	}
	sc.r.claimed = true
	return advance(incident.StepSilencing, "guards passed (breaker "+bs.String()+")")
}
