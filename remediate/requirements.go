package remediate

import (
	"context"
	"fmt"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// requirement is something a step depends on that the world (a human, another tool, a crash)
// can take away between steps. The step table lists each step's; the engine re-reads them
// before every execution of the step, so a mutation never runs on a world that moved.
type requirement int

const (
	// requireNoTakeover: no human's silence covers the cluster.
	requireNoTakeover requirement = iota
	// requireSnapshots: the incident's pre-recover snapshot tag is journaled and every node
	// holds it (`snapshot list`).
	requireSnapshots
	// requireRecovered: `quorum recover --auto` succeeded in this incident (journaled).
	requireRecovered
)

// require checks the step's requirements in order; held is false with the result of the first
// that does not hold.
func (sc *stageCtx) require(ctx context.Context, spec stepSpec) (res Result, held bool) {
	for _, req := range spec.requires {
		if res, ok := sc.check(ctx, req, spec.mutation); !ok {
			return res, false
		}
	}
	return Result{}, true
}

// check reads one requirement; when it does not hold, the result says why and that mutation
// was not run.
func (sc *stageCtx) check(ctx context.Context, req requirement, mutation string) (Result, bool) {
	notRun := "; " + mutation + " not run"
	switch req {
	case requireNoTakeover:
		if sc.humans == nil {
			return Result{}, true
		}
		if t := sc.humans.takenOver(ctx, sc.inc); t != "" {
			return TakenOver(t), false
		}
	case requireSnapshots:
		tag := sc.inc.SnapshotTag
		if tag == "" {
			return handOver("no pre-recover snapshot tag journaled" + notRun), false
		}
		lists, errs := sc.snapshotLists(ctx, sc.nodeConfigs(nil), prioRecovery)
		if missing := missingSnapshot(sc.nodeIDs(), lists, tag); len(missing) > 0 {
			return handOver(fmt.Sprintf("snapshot %s not held by %s%s", tag, describe(missing, errs), notRun)), false
		}
	case requireRecovered:
		if sc.inc.Recovery == nil {
			// Unreachable by construction; a safety rule is worth the check.
			res := Close(incident.OutcomeFailed, "no successful quorum recover journaled for this incident"+notRun)
			return res, false
		}
	}
	return Result{}, true
}

// handOver ends the incident for a human because something the runbook relies on failed.
func handOver(reason string) Result { return Close(incident.OutcomeNeedsHuman, reason) }
