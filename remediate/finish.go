package remediate

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// finish closes an incident whose outcome (or abort) is journaled: for an abort it first
// reports the state the nodes were left in; then it expires the silence, records the result on
// the cluster (anti-flap, breaker, last incident) and marks the incident closed. Every part is
// idempotent, and finishes are serialized, so the API and a runner may both call it.
func (e *Engine) finish(ctx context.Context, r *runner, id string) error {
	if r != nil {
		e.stopKeeper(r)
	}
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	inc, err := e.j.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("read incident %s to close it: %w", id, err)
	}
	if !inc.Open() {
		return nil
	}
	if inc.Outcome == "" && inc.Abort != nil {
		reason := e.abortReport(ctx, inc)
		inc, err = e.j.Update(ctx, id, func(cur *incident.Incident) error {
			if cur.Outcome == "" {
				cur.Outcome = incident.OutcomeAborted
				cur.Reason = reason
				cur.Timeline = append(cur.Timeline, incident.Event{At: e.now(), Step: cur.Step,
					Message: "outcome aborted: " + reason})
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("journal abort of %s: %w", id, err)
		}
	}
	if inc.Outcome == "" {
		return nil // nothing decided yet
	}
	e.failpoint("closing")

	_, _, _, sil := e.snapshot(inc.Cluster)
	if sil != nil {
		e.expireSilences(ctx, sil, inc)
	}
	if err := e.recordOnCluster(ctx, inc); err != nil {
		return err
	}
	closed, err := e.j.Update(ctx, id, func(cur *incident.Incident) error {
		if !cur.Open() {
			return errStale
		}
		now := e.now()
		cur.Step = incident.StepClosed
		cur.ClosedAt = &now
		cur.UpdatedAt = now
		cur.Timeline = append(cur.Timeline, incident.Event{At: now, Step: incident.StepClosed,
			Message: fmt.Sprintf("closed: %s", cur.Outcome)})
		return nil
	})
	if err == errStale {
		return nil
	}
	if err != nil {
		return fmt.Errorf("journal close of %s: %w", id, err)
	}
	if err := (storeClaims{j: e.j}).release(ctx, id); err != nil {
		e.log.Warn("claim not released; the next claim prunes it", "incident", id, "err", err)
	}
	if closed.RemediationStarted {
		e.requeueBlastRadius(ctx, id)
	}
	e.m.closed(closed.Cluster, closed.Outcome)
	if e.config().Cluster(closed.Cluster) != nil {
		e.m.setStep(closed.Cluster, incident.StepClosed)
		e.m.stepDeadline.WithLabelValues(closed.Cluster).Set(0)
	}
	switch closed.Outcome {
	case incident.OutcomeNeedsHuman, incident.OutcomeFailed, incident.OutcomeAborted:
		// The responder hands over: its silence is expired, so on-call is paged; say why.
		e.log.Warn("incident handed to a human", "incident", id, "cluster", closed.Cluster, "outcome", closed.Outcome, "reason", closed.Reason)
	case incident.OutcomeAntiFlap, incident.OutcomePaused, incident.OutcomeBlastRadius, incident.OutcomeBreakerOpen:
		e.log.Warn("incident refused by a guard: its alert is left unhandled (POST .../retry re-evaluates it)",
			"incident", id, "cluster", closed.Cluster, "outcome", closed.Outcome, "reason", closed.Reason)
	default:
		e.log.Info("incident closed", "incident", id, "cluster", closed.Cluster, "outcome", closed.Outcome, "reason", closed.Reason)
	}
	return nil
}

// expireSilences expires the incident's silence — the journaled one and any Alertmanager has
// for it that a crash kept us from journaling — so humans are paged if the alert still fires.
func (e *Engine) expireSilences(ctx context.Context, sil *silencer, inc *incident.Incident) {
	var ids []string
	done := map[string]bool{}
	for _, s := range inc.Silences {
		switch s.Action {
		case silenceCreated, silenceExtended:
			if s.ID != "" && !slices.Contains(ids, s.ID) {
				ids = append(ids, s.ID)
			}
		case silenceExpired, silenceHumanExpired:
			done[s.ID] = true
		}
	}
	if found, err := sil.Find(ctx, inc.Cluster, inc.ID); err == nil && found != nil && !slices.Contains(ids, deref(found.ID)) {
		ids = append(ids, deref(found.ID))
	}
	for _, sid := range ids {
		if done[sid] {
			continue
		}
		ends, err := e.endOnClose(ctx, sil, inc, sid) // at once, or after recovered a grace later (handover.go)
		if err != nil {
			// The orphan sweep expires it once Alertmanager answers again.
			e.recordSilence(ctx, inc.ID, incident.Silence{ID: sid, Action: silenceFailed, At: e.now(), Error: err.Error()})
			continue
		}
		e.recordSilence(ctx, inc.ID, incident.Silence{ID: sid, Action: silenceExpired, At: e.now(), EndsAt: ends})
	}
}

// recordOnCluster updates the cluster's document (last incident, anti-flap clock) and its
// breaker. The breaker result is recorded once per incident even if closing is retried.
func (e *Engine) recordOnCluster(ctx context.Context, inc *incident.Incident) error {
	e.stateMu.Lock()
	defer e.stateMu.Unlock()
	st, err := loadClusterState(ctx, e.j, inc.Cluster)
	if err != nil {
		return err
	}
	if inc.RemediationStarted && st.BreakerRecorded != inc.ID {
		switch inc.Outcome {
		case incident.OutcomeRecovered:
			err = e.brk.Record(ctx, inc.Cluster, true)
		case incident.OutcomeNeedsHuman, incident.OutcomeFailed:
			err = e.brk.Record(ctx, inc.Cluster, false)
		}
		if err != nil {
			return err
		}
	}
	return updateClusterState(ctx, e.j, inc.Cluster, func(cs *clusterState) {
		cs.LastIncident, cs.LastOutcome = inc.ID, inc.Outcome
		if inc.RemediationStarted {
			now := e.now()
			cs.LastRemediationAt, cs.LastRemediationIncident = &now, inc.ID
			cs.BreakerRecorded = inc.ID
		}
	})
}

// abortReport says what state an aborted incident left the nodes in, asking them (bounded by
// the command timeout), so the human who aborted knows what to do by hand.
func (e *Engine) abortReport(ctx context.Context, inc *incident.Incident) string {
	a := inc.Abort
	parts := []string{fmt.Sprintf("aborted by %s at step %s: %s", a.By, inc.Step, a.Reason)}
	if !inc.RemediationStarted {
		return parts[0] + "; nothing was mutated"
	}
	cfg, cc, drv, _ := e.snapshot(inc.Cluster)
	if cc == nil || drv == nil {
		return parts[0] + "; cluster no longer configured, node state unknown"
	}
	timeout := cfg.CommandTimeout(cc)
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sc := &stageCtx{inc: inc, cfg: cfg, cluster: cc, deps: deps{driver: drv, slots: e.sem, now: e.now}}
	states, errs := sc.raftStates(cctx, cc.Nodes, prioDiag)
	var suspended, running, unknown []string
	for _, n := range cc.Nodes {
		switch s, ok := states[n.ID]; {
		case !ok:
			unknown = append(unknown, n.ID)
		case s == zmy.StateSuspended:
			suspended = append(suspended, n.ID)
		default:
			running = append(running, n.ID)
		}
	}
	if len(suspended) > 0 {
		parts = append(parts, "nodes left suspended: "+strings.Join(suspended, ","))
	}
	if len(running) > 0 {
		parts = append(parts, "nodes not suspended: "+strings.Join(running, ","))
	}
	if len(unknown) > 0 {
		parts = append(parts, "state unknown: "+describe(unknown, errs))
	}
	if inc.SnapshotTag != "" {
		parts = append(parts, "snapshots "+inc.SnapshotTag)
	}
	if inc.Recovery != nil {
		parts = append(parts, "quorum recover done (majority "+strings.Join(inc.Recovery.Majority, ",")+")")
	} else {
		parts = append(parts, "quorum recover not run")
	}
	if len(suspended) > 0 {
		parts = append(parts, "to resume by hand, after `zmyctl quorum recover --auto` named one majority: zmyctl raft resume on "+
			strings.Join(suspended, ","))
	}
	return strings.Join(parts, "; ")
}

// stopKeeper stops the incident's silence keeper, so that it cannot extend or create a
// silence after the close expired it.
func (e *Engine) stopKeeper(r *runner) {
	e.mu.Lock()
	cancel, done := r.keeperCancel, r.keeperDone
	r.keeperCancel, r.keeperDone = nil, nil
	e.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// startKeeper starts the incident's silence keeper once it passed the guards.
func (e *Engine) startKeeper(ctx context.Context, r *runner) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r.keeperCancel != nil || e.sil == nil {
		return
	}
	kctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	r.keeperCancel, r.keeperDone = cancel, done
	go func() {
		defer close(done)
		e.keepSilence(kctx, r)
	}()
}
