package remediate

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// stageContaining stops the bleeding: `raft suspend --force` on every node in parallel, then
// `raft state` on each until all report suspended. It runs under the golden window (the step's
// deadline); a node that cannot be suspended in it makes the incident needs_human. Level-based:
// after a restart it asks the nodes first and suspends only those not suspended yet.
func stageContaining(ctx context.Context, sc *stageCtx) result {
	all := sc.nodes(nil)
	ids := sc.nodeIDs()
	var states map[string]string
	var errs map[string]error // why each node is not suspended, from the latest round
	if !sc.r.freshContain {
		states, _ = sc.raftStates(ctx, all, prioContain)
	}
	sc.r.freshContain = false
	b := newBackoff(50*time.Millisecond, time.Second)
	var first sync.Once
	for {
		todo := notSuspended(ids, states)
		if len(todo) == 0 {
			break
		}
		suspendErrs := sc.each(ctx, sc.nodes(todo), prioContain, func(ctx context.Context, n config.NodeConfig) error {
			_, res, err := sc.drv.Suspend(ctx, n)
			sc.record(res, err)
			if err == nil {
				first.Do(func() { sc.e.failpoint("containing:mid") })
			}
			return err
		})
		states, errs = sc.raftStates(ctx, all, prioContain)
		for id, err := range suspendErrs {
			if _, ok := errs[id]; !ok && states[id] != zmy.StateSuspended {
				errs[id] = err
			}
		}
		if len(notSuspended(ids, states)) == 0 {
			break
		}
		if !sleep(ctx, b.next(), nil) {
			left := notSuspended(ids, states)
			return result{outcome: incident.OutcomeNeedsHuman, label: resultTimeout, reason: fmt.Sprintf(
				"could not suspend %d of %d nodes within the golden window: %s",
				len(left), len(ids), describe(left, errs))}
		}
	}
	contained := sc.e.now()
	ttc := contained.Sub(firstReceived(sc.inc))
	sc.e.m.contained(sc.inc.Cluster, ttc)
	res := advance(incident.StepSnapshotting, fmt.Sprintf("all %d nodes suspended, %s after the first alert",
		len(ids), ttc.Round(time.Millisecond)))
	res.apply = func(inc *incident.Incident) {
		if inc.ContainedAt == nil {
			inc.ContainedAt = &contained
		}
	}
	return res
}

// stageSnapshotting saves `snapshot save --tag pre-recover-<unix>` on every node that lacks
// it and verifies with `snapshot list`. The tag is chosen once and journaled before the first
// save, so a restart saves under the same tag and never twice.
func stageSnapshotting(ctx context.Context, sc *stageCtx) result {
	tag := sc.inc.SnapshotTag
	if tag == "" {
		chosen := snapshotTag(sc.e.now())
		inc, err := sc.e.j.Update(ctx, sc.inc.ID, func(cur *incident.Incident) error {
			if err := sameStep(cur, sc.inc.Step); err != nil {
				return err
			}
			if cur.SnapshotTag == "" {
				cur.SnapshotTag = chosen
				cur.Timeline = append(cur.Timeline, incident.Event{At: sc.e.now(), Step: cur.Step,
					Message: "snapshot tag " + chosen})
			}
			return nil
		})
		if err != nil {
			return retry(time.Second, resultError, "journal snapshot tag: "+err.Error())
		}
		tag = inc.SnapshotTag
	}
	ids := sc.nodeIDs()
	lists, errs := sc.snapshotLists(ctx, sc.nodes(nil), prioRecovery)
	missing := missingSnapshot(ids, lists, tag)
	if len(missing) > 0 {
		saveErrs := sc.each(ctx, sc.nodes(missing), prioRecovery, func(ctx context.Context, n config.NodeConfig) error {
			_, res, err := sc.drv.SnapshotSave(ctx, n, tag)
			sc.record(res, err)
			return err
		})
		sc.e.failpoint("snapshotting:saved")
		lists, errs = sc.snapshotLists(ctx, sc.nodes(missing), prioRecovery)
		for id, err := range saveErrs {
			if _, ok := errs[id]; !ok {
				errs[id] = err
			}
		}
		missing = missingSnapshot(missing, lists, tag)
	}
	if len(missing) > 0 {
		return retry(500*time.Millisecond, resultError, fmt.Sprintf("snapshot %s missing on %s", tag, describe(missing, errs)))
	}
	return advance(incident.StepAwaitingRecovery, fmt.Sprintf("snapshot %s held by all %d nodes", tag, len(ids)))
}
