package remediate

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// maxSuspends is how many times containment sends `raft suspend` to one node; after that it
// only reads the node again until the golden window ends.
const maxSuspends = 3

// stageContaining stops the bleeding: `raft suspend --force` on every node in parallel, then
// `raft state` on each until all report suspended. It runs under the golden window (the step's
// deadline); a node that cannot be suspended in it makes the incident needs_human. Level-based:
// when a suspend of this step may have been sent already (its intent is journaled: a restart)
// or a node was made writable under the runbook (re-containing), it asks Alertmanager whether a
// human took over and the nodes what they are, and suspends only those not suspended. What it
// learnt of a node holds until the node says otherwise, so a read cut short by the deadline
// does not unlearn it.
func stageContaining(ctx context.Context, sc *stageCtx) Result {
	all, ids := sc.nodeConfigs(nil), sc.nodeIDs()
	known := map[string]zmy.RaftState{} // latest raft state read of each node
	readErrs := map[string]error{}      // why the latest read of a node failed
	sendErrs := map[string]error{}      // why the latest suspend of a node failed
	var mu sync.Mutex
	sent, acked := map[string]int{}, map[string]bool{}
	read := func(nodes []config.NodeConfig) {
		states, errs := sc.readStates(ctx, nodes, prioContain)
		for id, st := range states {
			known[id] = st
			delete(readErrs, id)
		}
		maps.Copy(readErrs, errs)
	}
	if sc.intended(zmy.CmdSuspend) || sc.inc.Recontained > 0 {
		// Re-entered: the takeover the silencing step asked about may be old (a restart, a
		// failover) and a human may have stepped in since; ask before suspending again.
		if res, ok := sc.check(ctx, requireNoTakeover, "raft suspend"); !ok {
			return res
		}
		read(all)
	}
	b := newBackoff(50*time.Millisecond, time.Second)
	var first sync.Once
	for {
		todo := notSuspended(ids, roles(known))
		if len(todo) == 0 {
			break
		}
		var send []string
		for _, id := range todo {
			if sent[id] < maxSuspends {
				send = append(send, id)
			}
		}
		if len(send) > 0 {
			if err := sc.intend(ctx, zmy.CmdSuspend, send, 0); err != nil {
				return Retry(retryRead, "journal the suspend intent: "+err.Error())
			}
			errs := sc.each(ctx, sc.nodeConfigs(send), prioContain, func(ctx context.Context, n config.NodeConfig) error {
				st, res, err := sc.driver.Suspend(ctx, n)
				sc.record(res, err)
				mu.Lock()
				sent[n.ID]++
				acked[n.ID] = err == nil && st != nil && st.RaftState == zmy.StateSuspended
				mu.Unlock()
				if err == nil {
					first.Do(func() { sc.failpoint("containing:mid") })
				}
				return err
			})
			for _, id := range send {
				if err, ok := errs[id]; ok {
					sendErrs[id] = err
				} else {
					delete(sendErrs, id)
				}
			}
		}
		read(sc.nodeConfigs(todo))
		if len(notSuspended(ids, roles(known))) == 0 {
			break
		}
		if !sleep(ctx, b.next(), nil) {
			left := notSuspended(ids, roles(known))
			return CloseTimeout(incident.OutcomeNeedsHuman, fmt.Sprintf(
				"could not verify %d of %d nodes suspended within the golden window (%d verified): %s",
				len(left), len(ids), len(ids)-len(left), describeContainment(left, known, sent, acked, sendErrs, readErrs)))
		}
	}
	if foreign := foreignSuspends(ids, known, sc.self); len(foreign) > 0 {
		return handOver(fmt.Sprintf("suspended by someone other than this responder (%s): %s; another responder or a human is acting on this cluster: nothing more done",
			sc.self, describeForeign(foreign, known)))
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

// describeContainment says, for each node containment could not verify, what was sent and what
// was read: "n4 (suspend sent 3×: zmyctl exited 3: node unreachable; raft state: timeout)".
func describeContainment(left []string, known map[string]zmy.RaftState, sent map[string]int, acked map[string]bool,
	sendErrs, readErrs map[string]error) string {
	parts := make([]string, 0, len(left))
	for _, id := range left {
		var what []string
		switch {
		case sent[id] == 0:
			what = append(what, "no suspend sent")
		case sendErrs[id] != nil:
			what = append(what, fmt.Sprintf("suspend sent %d×: %v", sent[id], sendErrs[id]))
		case acked[id]:
			what = append(what, fmt.Sprintf("suspend sent %d×, answered suspended", sent[id]))
		default:
			what = append(what, fmt.Sprintf("suspend sent %d×", sent[id]))
		}
		if err := readErrs[id]; err != nil {
			what = append(what, "raft state: "+err.Error())
		} else if st, ok := known[id]; ok {
			what = append(what, "raft state "+st.RaftState)
		}
		parts = append(parts, id+" ("+strings.Join(what, "; ")+")")
	}
	return strings.Join(parts, ", ")
}

// stageSnapshotting saves `snapshot save --tag pre-recover-<unix>` on every node that lacks
// it and verifies with `snapshot list`. The tag is chosen once and journaled before the first
// save, so a restart saves under the same tag and never twice.
func stageSnapshotting(ctx context.Context, sc *stageCtx) Result {
	tag := sc.inc.SnapshotTag
	if tag == "" {
		chosen := snapshotTag(sc.now(), sc.inc.Recontained)
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
		if err := sc.intend(ctx, zmy.CmdSnapshotSave, missing, 0); err != nil {
			return Retry(retryTag, "journal the snapshot intent: "+err.Error())
		}
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

// intend journals that command is about to be sent to nodes in this step, before it is sent
// (term: for recover, the highest term the nodes reported just before).
func (sc *stageCtx) intend(ctx context.Context, command string, nodes []string, term uint64) error {
	in := incident.Intent{Step: sc.inc.Step, Command: command, Nodes: nodes, At: sc.now(), Term: term}
	_, err := sc.journal.Update(ctx, sc.inc.ID, func(cur *incident.Incident) error {
		if err := sameStep(cur, sc.inc.Step); err != nil {
			return err
		}
		cur.Intents = append(cur.Intents, in)
		return nil
	})
	if err != nil {
		return err
	}
	sc.inc.Intents = append(sc.inc.Intents, in)
	return nil
}

// intended reports whether command may have been sent in the current step already: its
// intent was journaled since the step was entered.
func (sc *stageCtx) intended(command string) bool {
	_, ok := sc.intent(command)
	return ok
}

// intent returns the first intent of command journaled since the step was entered.
func (sc *stageCtx) intent(command string) (incident.Intent, bool) {
	for _, in := range sc.inc.Intents {
		if in.Step == sc.inc.Step && in.Command == command && !in.At.Before(sc.inc.StepEnteredAt) {
			return in, true
		}
	}
	return incident.Intent{}, false
}
