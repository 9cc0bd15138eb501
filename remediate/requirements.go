package remediate

import (
	"context"
	"fmt"
	"maps"
	"time"

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
	// requireSuspended: every node is still suspended, by this runbook. A node someone made
	// writable again is re-contained once (new snapshots follow); the second time, or a node
	// suspended by another responder, or one that cannot be read, is for a human.
	requireSuspended
)

// maxRecontain is how many times a runbook goes back to containment when a node was made
// writable under it; after that the world is moving too much for an automaton.
const maxRecontain = 1

// requireRereadDelay is the pause before a node that did not answer a requirement's read is
// asked once more, before concluding it cannot be proven.
const requireRereadDelay = 200 * time.Millisecond

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
	case requireSuspended:
		return sc.checkSuspended(ctx, mutation)
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

// checkSuspended re-reads every node's raft state before mutation (kept in sc.states for the
// stage) and decides what a moved world means.
func (sc *stageCtx) checkSuspended(ctx context.Context, mutation string) (Result, bool) {
	notRun := "; " + mutation + " not run"
	ids := sc.nodeIDs()
	states, errs := sc.readStates(ctx, sc.nodeConfigs(nil), prioRecovery)
	if len(errs) > 0 && sleep(ctx, requireRereadDelay, nil) {
		var again []string
		for id := range errs {
			again = append(again, id)
		}
		more, stillErr := sc.readStates(ctx, sc.nodeConfigs(again), prioRecovery)
		maps.Copy(states, more)
		errs = stillErr
	}
	sc.states = states
	var unknown []string
	for _, id := range ids {
		if _, ok := states[id]; !ok {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		return handOver(fmt.Sprintf("cannot prove every node is still suspended: %s%s", describe(unknown, errs), notRun)), false
	}
	if foreign := foreignSuspends(ids, states, sc.self); len(foreign) > 0 {
		return handOver(fmt.Sprintf("suspended by someone other than this responder (%s): %s; another responder or a human is acting on this cluster%s",
			sc.self, describeForeign(foreign, states), notRun)), false
	}
	moved := notSuspended(ids, roles(states))
	if len(moved) == 0 {
		return Result{}, true
	}
	what := fmt.Sprintf("writable again before %s: %s", mutation, describeRoles(moved, states))
	if sc.inc.Recontained >= maxRecontain {
		return handOver(fmt.Sprintf("%s, and the runbook already re-contained %d time(s)%s", what, sc.inc.Recontained, notRun)), false
	}
	now := sc.now()
	return Goto(incident.StepContaining, what+": re-containing; new snapshots and a new approval will be needed").With(func(inc *incident.Incident) {
		inc.Recontained++
		inc.RecontainedAt = &now
		inc.SnapshotTag = "" // the nodes took writes: a new pre-recover snapshot on every node
	}), false
}
