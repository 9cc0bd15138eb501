package remediate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// ErrInvalid says a human decision lacks who or why.
var ErrInvalid = errors.New("by and reason are required")

func (e *Engine) validate(a *incident.Approval) error {
	a.By, a.Reason = strings.TrimSpace(a.By), strings.TrimSpace(a.Reason)
	if a.By == "" || a.Reason == "" {
		return ErrInvalid
	}
	a.At = e.now()
	return nil
}

// Approve records a human approval of the recovery step. It is accepted once the verdict is
// confirmed and until the gate is passed; otherwise the error wraps incident.ErrConflict.
// Each person (By, compared without case) is credited once, with their first approval; a
// repeat (a double click, two tabs, a retried request) is only noted in the timeline.
func (e *Engine) Approve(ctx context.Context, id string, a incident.Approval) (*incident.Incident, error) {
	if err := e.validate(&a); err != nil {
		return nil, fmt.Errorf("approve %s: %w", id, err)
	}
	inc, err := e.j.Update(ctx, id, func(cur *incident.Incident) error {
		if !approvable(cur) || cur.Outcome != "" {
			return fmt.Errorf("approve %s at step %s: %w (approval is taken once the split-brain is confirmed and until the recovery gate is passed)",
				id, cur.Step, incident.ErrConflict)
		}
		// Update runs fn on the stored record under the journal's write lock, so concurrent
		// approvals see each other here. Approvals given before a re-containment approved
		// another world and do not count (currentApproval): a person may approve again.
		for _, prev := range cur.Approvals {
			if cur.RecontainedAt != nil && !prev.At.After(*cur.RecontainedAt) {
				continue
			}
			if strings.EqualFold(prev.By, a.By) {
				cur.UpdatedAt = a.At
				cur.Timeline = append(cur.Timeline, incident.Event{At: a.At, Step: cur.Step,
					Message: fmt.Sprintf("approved again by %s: %s (not counted: %s's approval of %s is already recorded)",
						a.By, a.Reason, prev.By, prev.At.UTC().Format(time.RFC3339))})
				return nil
			}
		}
		cur.Approvals = append(cur.Approvals, a)
		cur.UpdatedAt = a.At
		cur.Timeline = append(cur.Timeline, incident.Event{At: a.At, Step: cur.Step,
			Message: fmt.Sprintf("approved by %s: %s", a.By, a.Reason)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	e.Kick(id) // wakes a gate that is waiting
	return inc, nil
}

// Abort stops the incident's automatic steps at once, records who and why, expires the silence
// and closes the incident as aborted, saying in Reason what state the nodes were left in.
func (e *Engine) Abort(ctx context.Context, id string, a incident.Approval) (*incident.Incident, error) {
	if err := e.validate(&a); err != nil {
		return nil, fmt.Errorf("abort %s: %w", id, err)
	}
	requested, err := e.j.Update(ctx, id, func(cur *incident.Incident) error {
		if !cur.Open() || cur.Outcome != "" || cur.Abort != nil {
			return fmt.Errorf("abort %s: %w (already closed or closing)", id, incident.ErrConflict)
		}
		cur.Abort = &a
		cur.UpdatedAt = a.At
		cur.Timeline = append(cur.Timeline, incident.Event{At: a.At, Step: cur.Step,
			Message: fmt.Sprintf("abort requested by %s: %s", a.By, a.Reason)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Journaled first, so a crash from here on still ends as aborted; now stop the runner.
	e.mu.Lock()
	r := e.runners[id]
	e.mu.Unlock()
	if r != nil {
		r.cancel(errors.New("aborted by " + a.By))
		select {
		case <-r.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("abort %s: waiting for its steps to stop: %w", id, ctx.Err())
		}
	}
	fence, err := e.lead.Acting(requested.Cluster)
	if err != nil {
		// Another replica leads the cluster: it stops the runbook and finishes the abort at
		// its next look at the journal.
		return requested, nil
	}
	if err := e.finish(incident.WithFence(ctx, fence), nil, id); err != nil {
		return nil, fmt.Errorf("abort %s: %w", id, err)
	}
	return e.j.Get(ctx, id)
}

// Pause sets the cluster's kill switch: no new remediation passes the guards until Unpause.
// Incidents already past the guards go on; Abort stops them.
func (e *Engine) Pause(ctx context.Context, cluster string, a incident.Approval) error {
	return e.setPause(ctx, cluster, a, true)
}

// Unpause clears the cluster's kill switch.
func (e *Engine) Unpause(ctx context.Context, cluster string, a incident.Approval) error {
	return e.setPause(ctx, cluster, a, false)
}

func (e *Engine) setPause(ctx context.Context, cluster string, a incident.Approval, pause bool) error {
	if e.config().Cluster(cluster) == nil {
		return fmt.Errorf("pause %s: %w", cluster, incident.ErrUnknownCluster)
	}
	if err := e.validate(&a); err != nil {
		return fmt.Errorf("pause %s: %w", cluster, err)
	}
	var was *PauseState
	e.stateMu.Lock()
	err := updateClusterState(ctx, e.j, cluster, func(cs *clusterState) {
		was = cs.Paused
		if pause {
			cs.Paused = &PauseState{By: a.By, Reason: a.Reason, At: a.At}
		} else {
			cs.Paused = nil
		}
	})
	e.stateMu.Unlock()
	if err != nil {
		return err
	}
	v := 0.0
	if pause {
		v = 1
	}
	e.m.clusterPaused.WithLabelValues(cluster).Set(v)
	e.log.Info("cluster kill switch", "cluster", cluster, "paused", pause, "by", a.By, "reason", a.Reason)
	if !pause && was != nil {
		e.reevaluatePaused(ctx, cluster, *was, a)
	}
	return nil
}

// ClusterStatus is one cluster as GET /api/v1/clusters shows it.
type ClusterStatus struct {
	Name            string           `json:"name"`
	Breaker         string           `json:"breaker"` // closed, half-open, open
	BreakerState    int              `json:"breaker_state"`
	Paused          *PauseState      `json:"paused,omitempty"`
	DryRun          bool             `json:"dry_run"`
	RequireApproval bool             `json:"require_approval"`
	LastIncident    string           `json:"last_incident,omitempty"`
	LastOutcome     incident.Outcome `json:"last_outcome,omitempty"`
	LastRemediation *time.Time       `json:"last_remediation_at,omitempty"`
	OpenIncident    string           `json:"open_incident,omitempty"`
	CurrentStep     incident.Step    `json:"current_step,omitempty"`
}

// Clusters returns every configured cluster's status, sorted by name.
func (e *Engine) Clusters(ctx context.Context) ([]ClusterStatus, error) {
	cfg := e.config()
	open, err := e.j.List(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("list open incidents: %w", err)
	}
	out := make([]ClusterStatus, 0, len(cfg.Clusters))
	for _, c := range cfg.Clusters {
		bs, err := e.brk.State(ctx, c.Name)
		if err != nil {
			return nil, err
		}
		cs, err := loadClusterState(ctx, e.j, c.Name)
		if err != nil {
			return nil, err
		}
		st := ClusterStatus{Name: c.Name, Breaker: bs.String(), BreakerState: int(bs), Paused: cs.Paused,
			DryRun: dryRun(cfg, &c), RequireApproval: requireApproval(cfg, &c),
			LastIncident: cs.LastIncident, LastOutcome: cs.LastOutcome, LastRemediation: cs.LastRemediationAt}
		// List is newest first: the last match is the oldest open incident, the one that
		// holds the cluster.
		for _, inc := range open {
			if inc.Cluster == c.Name {
				st.OpenIncident, st.CurrentStep = inc.ID, inc.Step
			}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// sweepOrphans expires silences we created whose incident is closed or unknown (left by a
// crash, or by an Alertmanager that was down when the incident closed): at start, then every
// extend_every.
func (e *Engine) sweepOrphans(ctx context.Context) {
	for {
		_, _, _, sil := e.snapshot("")
		if sil != nil {
			e.sweepOnce(ctx, sil)
		}
		if !sleep(ctx, max(time.Duration(e.config().Alertmanager.ExtendEvery), time.Second), nil) {
			return
		}
	}
}

func (e *Engine) sweepOnce(ctx context.Context, sil *silencer) {
	all, err := sil.List(ctx)
	if err != nil {
		e.log.Debug("orphan silence sweep: alertmanager not reachable", "err", err)
		return
	}
	for _, s := range all {
		if !sil.ours(s) || state(s) == "expired" {
			continue
		}
		id, ok := incidentOf(deref(s.Comment))
		cluster := sil.clusterOf(s)
		if !ok || e.config().Cluster(cluster) == nil {
			continue // not one of our clusters: another deployment's silence
		}
		inc, err := e.j.Get(ctx, id)
		switch {
		case errors.Is(err, incident.ErrNotFound):
		case err != nil:
			continue
		case inc.Cluster != cluster, inc.Open(), e.inRecoveredGrace(inc):
			continue
		}
		if err := sil.Expire(ctx, deref(s.ID)); err != nil {
			e.m.silences.WithLabelValues(silenceFailed).Inc()
			e.log.Warn("cannot expire orphan silence", "silence", deref(s.ID), "incident", id, "err", err)
			continue
		}
		if inc != nil {
			e.recordSilence(ctx, id, incident.Silence{ID: deref(s.ID), Action: silenceExpired, At: e.now(),
				Error: "orphan expired at start"})
		} else {
			e.m.silences.WithLabelValues(silenceExpired).Inc()
		}
		e.log.Info("expired orphan silence", "silence", deref(s.ID), "incident", id)
	}
}
