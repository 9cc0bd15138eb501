package remediate

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// retryable are the outcomes a human may ask to re-evaluate: the ones that closed with the
// alert possibly still firing and nothing (or not everything) done about it.
var retryable = []incident.Outcome{incident.OutcomeNotConfirmed, incident.OutcomeInconclusive,
	incident.OutcomePaused, incident.OutcomeAntiFlap, incident.OutcomeBlastRadius,
	incident.OutcomeBreakerOpen, incident.OutcomeNeedsHuman}

// Retryable reports whether Retry takes the incident: closed with a retryable outcome, not
// retried yet, its alert not resolved.
func Retryable(inc *incident.Incident) bool {
	return !inc.Open() && slices.Contains(retryable, inc.Outcome) && inc.RetriedBy == "" && inc.ResolvedAt == nil
}

// Retry re-evaluates a closed incident as a new incident of the same cluster and alert, linked
// to it (retry_of / retried_by): the new one confirms, guards and remediates from the start.
// Retrying an anti_flap refusal is the recorded human override of the anti-flap period. The
// alert must still be firing; if an incident of the same alert is open already, that one is
// linked and returned.
func (e *Engine) Retry(ctx context.Context, id string, a incident.Approval) (*incident.Incident, error) {
	if err := e.validate(&a); err != nil {
		return nil, fmt.Errorf("retry %s: %w", id, err)
	}
	old, err := e.j.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	switch {
	case old.Open():
		return nil, fmt.Errorf("retry %s: %w (still open, at step %s)", id, incident.ErrConflict, old.Step)
	case !slices.Contains(retryable, old.Outcome):
		return nil, fmt.Errorf("retry %s: %w (closed %s; only %v are retried)", id, incident.ErrConflict, old.Outcome, retryable)
	case old.RetriedBy != "":
		return nil, fmt.Errorf("retry %s: %w (already retried by %s)", id, incident.ErrConflict, old.RetriedBy)
	case old.ResolvedAt != nil:
		return nil, fmt.Errorf("retry %s: %w (its alert resolved)", id, incident.ErrConflict)
	case e.config().Cluster(old.Cluster) == nil:
		return nil, fmt.Errorf("retry %s: %w", id, incident.ErrUnknownCluster)
	}
	return e.reevaluate(ctx, old, a)
}

// reevaluate journals the old incident's firing alerts again — they open a new incident, or
// join the open one — links the two and starts the new one.
func (e *Engine) reevaluate(ctx context.Context, old *incident.Incident, a incident.Approval) (*incident.Incident, error) {
	var ds []incident.Delivery
	for _, al := range firingAlerts(old) {
		al.ReceivedAt, al.Deliveries = e.now(), 0
		ds = append(ds, incident.Delivery{Cluster: old.Cluster, Alertname: old.Alertname, Known: true, Alert: al})
	}
	if len(ds) == 0 {
		return nil, fmt.Errorf("retry %s: %w (no firing alert to re-evaluate)", old.ID, incident.ErrConflict)
	}
	res, err := e.j.Ingest(ctx, ds)
	if err != nil {
		return nil, fmt.Errorf("retry %s: journal its alerts again: %w", old.ID, err)
	}
	newID := res[0].IncidentID
	msg := fmt.Sprintf("re-evaluation of %s (closed %s) requested by %s: %s", old.ID, old.Outcome, a.By, a.Reason)
	inc, err := e.j.Update(ctx, newID, func(cur *incident.Incident) error {
		if cur.RetryOf == "" {
			cur.RetryOf = old.ID
		}
		if old.Outcome == incident.OutcomeAntiFlap && cur.AntiFlapOverride == nil {
			override := a
			cur.AntiFlapOverride = &override
		}
		cur.Timeline = append(cur.Timeline, incident.Event{At: a.At, Step: cur.Step, Message: msg})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("retry %s: link %s: %w", old.ID, newID, err)
	}
	if _, err := e.j.Update(ctx, old.ID, func(cur *incident.Incident) error {
		cur.RetriedBy = newID
		cur.Timeline = append(cur.Timeline, incident.Event{At: a.At, Step: cur.Step,
			Message: fmt.Sprintf("re-evaluated as %s, requested by %s: %s", newID, a.By, a.Reason)})
		return nil
	}); err != nil {
		e.log.Warn("retried incident not linked to its re-evaluation", "incident", old.ID, "retry", newID, "err", err)
	}
	e.log.Info("incident re-evaluated", "incident", old.ID, "as", newID, "by", a.By, "reason", a.Reason)
	e.Kick(newID)
	return inc, nil
}

// firingAlerts are the incident's alerts whose latest record is firing, one per fingerprint.
func firingAlerts(inc *incident.Incident) []incident.AlertRecord {
	latest := map[string]incident.AlertRecord{}
	var order []string
	for _, a := range inc.Alerts {
		prev, ok := latest[a.Fingerprint]
		if !ok {
			order = append(order, a.Fingerprint)
		}
		if !ok || a.LastSeen.After(prev.LastSeen) || a.StartsAt.After(prev.StartsAt) {
			latest[a.Fingerprint] = a
		}
	}
	var out []incident.AlertRecord
	for _, fp := range order {
		if a := latest[fp]; a.Status == "firing" {
			out = append(out, a)
		}
	}
	return out
}

// closedSince calls fn with the summaries of the incidents, newest first, page by page, until
// one closed before since (the journal is in opening order, and what closed before since opened
// before it too) or fn says stop. Summaries keep this cheap however large the journal.
func (e *Engine) closedSince(ctx context.Context, since time.Time, fn func(s *incident.Summary) (more bool)) error {
	q := incident.PageQuery{Limit: incident.MaxPageLimit}
	for {
		page, err := e.j.Page(ctx, q)
		if err != nil {
			return err
		}
		for i := range page.Incidents {
			s := &page.Incidents[i]
			if s.ClosedAt != nil && s.ClosedAt.Before(since) {
				return nil
			}
			if !fn(s) {
				return nil
			}
		}
		if page.Next == "" {
			return nil
		}
		q.Cursor = page.Next
	}
}

// reevaluatePaused re-evaluates, after an unpause, the cluster's incidents refused while it was
// paused whose alert still fires.
func (e *Engine) reevaluatePaused(ctx context.Context, cluster string, paused PauseState, a incident.Approval) {
	seen := map[string]bool{} // one re-evaluation per alertname: the newest refusal
	var refused []string
	err := e.closedSince(ctx, paused.At, func(s *incident.Summary) bool {
		if s.Cluster != cluster || s.Outcome != incident.OutcomePaused || s.RetriedBy != "" ||
			s.ResolvedAt != nil || seen[s.Alertname] {
			return true
		}
		seen[s.Alertname] = true
		refused = append(refused, s.ID)
		return true
	})
	if err != nil {
		e.log.Error("unpause: cannot list the incidents refused while paused", "cluster", cluster, "err", err)
		return
	}
	a.Reason = "unpaused: " + a.Reason
	for _, id := range refused {
		inc, err := e.j.Get(ctx, id)
		if err == nil {
			_, err = e.reevaluate(ctx, inc, a)
		}
		if err != nil {
			e.log.Warn("unpause: cannot re-evaluate an incident refused while paused", "incident", id, "err", err)
		}
	}
}

// requeueBlastRadius re-evaluates, when a remediation ended and freed its slot, the oldest
// incident refused for blast radius within blast_radius.requeue_window whose alert still fires:
// a queue, one at a time, instead of a forgotten refusal.
func (e *Engine) requeueBlastRadius(ctx context.Context, freedBy string) {
	window := time.Duration(e.config().Remediation.BlastRadius.RequeueWindow)
	if window <= 0 {
		return
	}
	var next string
	open := map[string]bool{} // cluster/alertname with an open incident: nothing to requeue
	err := e.closedSince(ctx, e.now().Add(-window), func(s *incident.Summary) bool {
		if s.Open() {
			open[s.Cluster+"/"+s.Alertname] = true
			return true
		}
		if s.Outcome == incident.OutcomeBlastRadius && s.RetriedBy == "" && s.ResolvedAt == nil &&
			!open[s.Cluster+"/"+s.Alertname] && e.config().Cluster(s.Cluster) != nil {
			next = s.ID // keep going: the oldest is served first
		}
		return true
	})
	if err != nil {
		e.log.Warn("blast radius queue: cannot list incidents", "err", err)
		return
	}
	if next == "" {
		return
	}
	a := incident.Approval{By: "zmy-responder", Reason: "blast radius freed by " + freedBy, At: e.now()}
	inc, err := e.j.Get(ctx, next)
	if err == nil {
		_, err = e.reevaluate(ctx, inc, a)
	}
	if err != nil {
		e.log.Warn("blast radius queue: cannot re-evaluate", "incident", next, "err", err)
	}
}
