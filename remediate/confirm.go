package remediate

import (
	"context"
	"fmt"
	"time"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

// The steps before anything is mutated: received, confirming, guarding. Each re-checks whether
// the alert resolved meanwhile (self_healed) because until containment starts, stopping is free.

const selfHealedReason = "the alert resolved before anything was mutated"

// confirmPoll is how often confirming probes again within detection.confirm_window.
const confirmPoll = 2 * time.Second

func stageReceived(_ context.Context, sc *stageCtx) Result {
	if selfHealed(sc.inc) {
		return Close(incident.OutcomeSelfHealed, selfHealedReason)
	}
	return Done("")
}

// stageConfirming runs the responder's own probes: the alert alone is never trusted.
func stageConfirming(ctx context.Context, sc *stageCtx) Result {
	if selfHealed(sc.inc) {
		return Close(incident.OutcomeSelfHealed, selfHealedReason)
	}
	v, err := sc.prober.Confirm(ctx, sc.inc.Cluster)
	if err != nil {
		return Retry(retryProbe, "confirm: "+err.Error())
	}
	proceed, outcome, reason := afterVerdict(v)
	if !proceed {
		record := func(inc *incident.Incident) { inc.Verdict = v }
		end := sc.inc.StepEnteredAt.Add(time.Duration(sc.cfg.Detection.ConfirmWindow))
		if now := sc.now(); now.Before(end) {
			// The alert fires: the split may show a moment later (Alertmanager resends only at
			// repeat_interval). Look again until the window ends.
			return Requeue(min(confirmPoll, end.Sub(now)), fmt.Sprintf("verdict %s; probing again every %s until %s (confirm_window)",
				v.Kind, confirmPoll, end.UTC().Format(time.RFC3339))).With(record)
		}
		return Close(outcome, reason).With(record)
	}
	plan := sc.plan()
	return Done("verdict confirmed: " + v.Reason).With(func(inc *incident.Incident) {
		inc.Verdict = v
		inc.Plan = plan
	})
}

// stageGuarding runs the guards. The decision and the claim on the cluster are one atomic
// step of the claimer, so that two incidents cannot both pass blast radius at once.
func stageGuarding(ctx context.Context, sc *stageCtx) Result {
	inc := sc.inc
	if selfHealed(inc) {
		return Close(incident.OutcomeSelfHealed, selfHealedReason)
	}
	in, err := readGuardInput(ctx, sc.guards, sc.cfg, sc.cluster, sc.now())
	if err != nil {
		return Retry(retryRead, err.Error())
	}
	in.AntiFlapOverride = inc.AntiFlapOverride
	_, ref, err := sc.claims.claim(ctx, inc.ID, inc.Cluster, func(others map[string]string) (string, *refusal) {
		in.Remediating = others
		return runGuards(in)
	})
	if err != nil {
		return Retry(retryRead, err.Error())
	}
	if ref != nil {
		return Close(ref.Outcome, ref.Reason)
	}
	return Done("guards passed (breaker " + in.Breaker.String() + ")")
}

// readGuardInput reads what the guards decide from, all but the other incidents' claims.
func readGuardInput(ctx context.Context, g guardReader, cfg *config.Config, cc *config.ClusterConfig, now time.Time) (guardInput, error) {
	bs, err := g.breakerState(ctx, cc.Name)
	if err != nil {
		return guardInput{}, fmt.Errorf("read breaker: %w", err)
	}
	cs, err := g.clusterState(ctx, cc.Name)
	if err != nil {
		return guardInput{}, err
	}
	return guardInput{
		Now: now, Cluster: cc.Name, Paused: cs.Paused, Breaker: bs,
		TotalClusters: len(cfg.Clusters), LastFinished: cs.LastRemediationAt,
		LastIncident: cs.LastRemediationIncident, DryRun: dryRun(cfg, cc), Cfg: cfg.Remediation,
	}, nil
}
