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
// when a suspend of this step may have been sent already (its intent is journaled: a restart),
// it asks the nodes first and suspends only those not suspended yet.
func stageContaining(ctx context.Context, sc *stageCtx) Result {
	all := sc.nodeConfigs(nil)
	ids := sc.nodeIDs()
	var states map[string]string
	var errs map[string]error // why each node is not suspended, from the latest round
	if sc.intended(zmy.CmdSuspend) {
		states, _ = sc.raftStates(ctx, all, prioContain)
	}
	b := newBackoff(50*time.Millisecond, time.Second)
	var first sync.Once
	for {
		todo := notSuspended(ids, states)
		if len(todo) == 0 {
			break
		}
		if err := sc.intend(ctx, zmy.CmdSuspend, todo); err != nil {
			return Retry(retryRead, "journal the suspend intent: "+err.Error())
		}
		suspendErrs := sc.each(ctx, sc.nodeConfigs(todo), prioContain, func(ctx context.Context, n config.NodeConfig) error {
			_, res, err := sc.driver.Suspend(ctx, n)
			sc.record(res, err)
			if err == nil {
				first.Do(func() { sc.failpoint("containing:mid") })
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
			return CloseTimeout(incident.OutcomeNeedsHuman, fmt.Sprintf(
				"could not suspend %d of %d nodes within the golden window: %s",
				len(left), len(ids), describe(left, errs)))
		}
	}
	contained := sc.now()
	ttc := contained.Sub(firstReceived(sc.inc))
	if sc.contained != nil {
		sc.contained(ttc)
	}
	return Done(fmt.Sprintf("all %d nodes suspended, %s after the first alert",
		len(ids), ttc.Round(time.Millisecond))).With(func(inc *incident.Incident) {
		if inc.ContainedAt == nil {
			inc.ContainedAt = &contained
		}
	})
}

// stageSnapshotting saves `snapshot save --tag pre-recover-<unix>` on every node that lacks
// it and verifies with `snapshot list`. The tag is chosen once and journaled before the first
// save, so a restart saves under the same tag and never twice.
func stageSnapshotting(ctx context.Context, sc *stageCtx) Result {
	tag := sc.inc.SnapshotTag
	if tag == "" {
		chosen := snapshotTag(sc.now())
		inc, err := sc.journal.Update(ctx, sc.inc.ID, func(cur *incident.Incident) error {
			if err := sameStep(cur, sc.inc.Step); err != nil {
				return err
			}
			if cur.SnapshotTag == "" {
				cur.SnapshotTag = chosen
				cur.Timeline = append(cur.Timeline, incident.Event{At: sc.now(), Step: cur.Step,
					Message: "snapshot tag " + chosen})
			}
			return nil
		})
		if err != nil {
			return Retry(retryTag, "journal snapshot tag: "+err.Error())
		}
		tag = inc.SnapshotTag
	}
	ids := sc.nodeIDs()
	lists, errs := sc.snapshotLists(ctx, sc.nodeConfigs(nil), prioRecovery)
	missing := missingSnapshot(ids, lists, tag)
	if len(missing) > 0 {
		saveErrs := sc.each(ctx, sc.nodeConfigs(missing), prioRecovery, func(ctx context.Context, n config.NodeConfig) error {
			_, res, err := sc.driver.SnapshotSave(ctx, n, tag)
			sc.record(res, err)
			return err
		})
		sc.failpoint("snapshotting:saved")
		lists, errs = sc.snapshotLists(ctx, sc.nodeConfigs(missing), prioRecovery)
		for id, err := range saveErrs {
			if _, ok := errs[id]; !ok {
				errs[id] = err
			}
		}
		missing = missingSnapshot(missing, lists, tag)
	}
	if len(missing) > 0 {
		return Retry(retrySnapshot, fmt.Sprintf("snapshot %s missing on %s", tag, describe(missing, errs)))
	}
	return Done(fmt.Sprintf("snapshot %s held by all %d nodes", tag, len(ids)))
}

// intend journals that command is about to be sent to nodes in this step, before it is sent.
func (sc *stageCtx) intend(ctx context.Context, command string, nodes []string) error {
	at := sc.now()
	_, err := sc.journal.Update(ctx, sc.inc.ID, func(cur *incident.Incident) error {
		if err := sameStep(cur, sc.inc.Step); err != nil {
			return err
		}
		cur.Intents = append(cur.Intents, incident.Intent{Step: cur.Step, Command: command, Nodes: nodes, At: at})
		return nil
	})
	if err != nil {
		return err
	}
	sc.inc.Intents = append(sc.inc.Intents, incident.Intent{Step: sc.inc.Step, Command: command, Nodes: nodes, At: at})
	return nil
}

// intended reports whether command may have been sent in the current step already: its
// intent was journaled since the step was entered.
func (sc *stageCtx) intended(command string) bool {
	for _, in := range sc.inc.Intents {
		if in.Step == sc.inc.Step && in.Command == command && !in.At.Before(sc.inc.StepEnteredAt) {
			return true
		}
	}
	return false
}
