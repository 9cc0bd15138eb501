package remediate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// A Stage runs one step of the runbook for one incident: it reads the real state, acts, and
// says what comes next. Stages never journal a transition themselves; the engine does that in
// act(), before the next stage runs.
type Stage interface {
	Exec(ctx context.Context, sc *stageCtx) result
}

// StageFunc adapts a function to Stage.
type StageFunc func(ctx context.Context, sc *stageCtx) result

// Exec calls f.
func (f StageFunc) Exec(ctx context.Context, sc *stageCtx) result { return f(ctx, sc) }

// result is a stage's answer; exactly one of next, outcome or after is set.
type result struct {
	next    incident.Step    // advance to this step
	outcome incident.Outcome // close the incident with this outcome
	after   time.Duration    // check again later (poll, or retry after an error)
	reason  string           // for outcome: the incident's Reason
	note    string           // timeline message
	label   string           // steps_total{result}; derived when empty
	apply   func(*incident.Incident)
}

func advance(next incident.Step, note string) result { return result{next: next, note: note} }

func end(o incident.Outcome, reason string) result { return result{outcome: o, reason: reason} }

func retry(after time.Duration, label, note string) result {
	return result{after: after, label: label, note: note}
}

// stageCtx is what a stage works with: the incident as read at the start of the step, the
// cluster's config and driver, and the commands run so far (journaled with the result).
type stageCtx struct {
	e        *Engine
	r        *runner
	inc      *incident.Incident
	cfg      *config.Config
	cluster  *config.ClusterConfig
	drv      *zmy.Driver
	sil      *silencer
	deadline time.Time

	mu   sync.Mutex
	cmds []incident.Command
}

// stages maps every open step to its stage.
func (e *Engine) stages() map[incident.Step]Stage {
	return map[incident.Step]Stage{
		incident.StepReceived:         StageFunc(stageReceived),
		incident.StepConfirming:       StageFunc(stageConfirming),
		incident.StepGuarding:         StageFunc(stageGuarding),
		incident.StepSilencing:        StageFunc(stageSilencing),
		incident.StepContaining:       StageFunc(stageContaining),
		incident.StepSnapshotting:     StageFunc(stageSnapshotting),
		incident.StepAwaitingRecovery: StageFunc(stageAwaitingRecovery),
		incident.StepArbitrating:      StageFunc(stageArbitrating),
		incident.StepResuming:         StageFunc(stageResuming),
		incident.StepVerifying:        StageFunc(stageVerifying),
	}
}

// execStep runs the stage of the incident's step under the step's deadline, and counts it.
func (e *Engine) execStep(ctx context.Context, r *runner, inc *incident.Incident) result {
	cfg, cc, drv, sil := e.snapshot(inc.Cluster)
	if cc == nil || drv == nil {
		return e.endNow(inc, fmt.Sprintf("cluster %s is no longer configured", inc.Cluster))
	}
	if t := e.takeoverOf(r); t != "" {
		return result{outcome: incident.OutcomeNeedsHuman, reason: "a human took over: " + t, label: resultSkipped}
	}
	stage, ok := e.stages()[inc.Step]
	if !ok {
		return end(incident.OutcomeFailed, fmt.Sprintf("no stage for step %q", inc.Step))
	}
	cmdTimeout := time.Duration(cc.CommandTimeout)
	if cmdTimeout <= 0 {
		cmdTimeout = time.Duration(cfg.Remediation.CommandTimeout)
	}
	budget := stepBudget(inc.Step, cfg.Remediation, cmdTimeout)
	if inc.Step == incident.StepSilencing {
		// Its Alertmanager calls are bounded by alertmanager.timeout, not command_timeout.
		budget = max(budget, 3*time.Duration(cfg.Alertmanager.Timeout))
	}
	deadline := stepEnteredAt(inc).Add(budget)
	e.m.stepDeadline.WithLabelValues(inc.Cluster).Set(float64(deadline.UnixNano()) / 1e9)
	start := e.now()
	if !start.Before(deadline) {
		res := e.timedOut(inc, r.lastNote)
		e.count(inc.Step, res, 0)
		return res
	}
	sctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	e.mu.Lock()
	r.stageCancel = cancel
	e.mu.Unlock()
	sc := &stageCtx{e: e, r: r, inc: inc, cfg: cfg, cluster: cc, drv: drv, sil: sil, deadline: deadline}
	res := stage.Exec(sctx, sc)
	e.mu.Lock()
	r.stageCancel = nil
	e.mu.Unlock()
	if t := e.takeoverOf(r); t != "" {
		// The silence keeper saw a human's silence while the stage ran (and cancelled it):
		// stop here, whatever the interrupted stage concluded; keep its evidence.
		res = result{outcome: incident.OutcomeNeedsHuman, reason: "a human took over: " + t, label: resultSkipped, apply: res.apply}
	}
	if res.outcome == "" && res.next == "" && errors.Is(sctx.Err(), context.DeadlineExceeded) {
		res = e.timedOut(inc, res.note)
	}
	res.cmds(sc)
	if res.note != "" {
		r.lastNote = res.note
	}
	e.count(inc.Step, res, e.now().Sub(start))
	return res
}

// cmds moves the commands a stage ran into the result's journal update.
func (res *result) cmds(sc *stageCtx) {
	sc.mu.Lock()
	cmds := sc.cmds
	sc.cmds = nil
	sc.mu.Unlock()
	if len(cmds) == 0 {
		return
	}
	prev := res.apply
	res.apply = func(inc *incident.Incident) {
		inc.Commands = append(inc.Commands, cmds...)
		if prev != nil {
			prev(inc)
		}
	}
}

// timedOut is the result of a step that ran out of time: before anything was mutated the
// verdict could not be reached (inconclusive); after, a human must look.
func (e *Engine) timedOut(inc *incident.Incident, last string) result {
	why := fmt.Sprintf("step %s ran out of time", inc.Step)
	if last != "" {
		why += ": " + last
	}
	if inc.RemediationStarted || pastGuards(inc.Step) {
		return result{outcome: incident.OutcomeNeedsHuman, reason: why, label: resultTimeout}
	}
	return result{outcome: incident.OutcomeInconclusive, reason: why, label: resultTimeout}
}

// endNow is the outcome for an incident the engine cannot work on any more.
func (e *Engine) endNow(inc *incident.Incident, why string) result {
	if inc.RemediationStarted {
		return result{outcome: incident.OutcomeNeedsHuman, reason: why, label: resultError}
	}
	return result{outcome: incident.OutcomeFailed, reason: why, label: resultError}
}

// count records one step attempt: its duration and its result label.
func (e *Engine) count(step incident.Step, res result, d time.Duration) {
	label := res.label
	if label == "" {
		switch {
		case res.next != "":
			label = resultOK
		case res.outcome == incident.OutcomeRecovered:
			label = resultOK
		case res.outcome == incident.OutcomeNeedsHuman || res.outcome == incident.OutcomeFailed:
			label = resultError
		case res.outcome != "":
			label = resultSkipped // a guard or verdict ended the incident: nothing more to do
		default:
			return // a poll that goes on is not an attempt's end
		}
	}
	e.m.steps.WithLabelValues(string(step), label).Inc()
	if d > 0 {
		e.m.stepDuration.WithLabelValues(string(step)).Observe(d.Seconds())
	}
}

// act journals the stage's result — the one place where results become actions. It returns
// how long to wait before the next look.
func (e *Engine) act(ctx context.Context, r *runner, inc *incident.Incident, res result) (time.Duration, error) {
	switch {
	case res.outcome != "":
		if err := e.decideClose(ctx, inc, res); err != nil {
			return 0, err
		}
		return 0, e.finish(ctx, r, inc.ID)
	case res.next != "":
		if err := e.transition(ctx, inc, res); err != nil {
			return 0, err
		}
		if res.next == incident.StepContaining {
			r.freshContain = true
		}
		e.failpoint("enter:" + string(res.next))
		return 0, nil
	default:
		if res.apply != nil || (res.note != "" && res.note != r.journaledNote) {
			note := res.note
			_, err := e.j.Update(ctx, inc.ID, func(cur *incident.Incident) error {
				if err := sameStep(cur, inc.Step); err != nil {
					return err
				}
				if res.apply != nil {
					res.apply(cur)
				}
				if note != "" && note != r.journaledNote {
					cur.Timeline = append(cur.Timeline, incident.Event{At: e.now(), Step: inc.Step, Message: note})
				}
				cur.UpdatedAt = e.now()
				return nil
			})
			if err != nil {
				return 0, fmt.Errorf("journal progress of %s: %w", inc.ID, err)
			}
			r.journaledNote = note
		}
		return max(res.after, time.Millisecond), nil
	}
}

// sameStep refuses an update if the stored incident moved on (aborted, closed, or stepped).
func sameStep(cur *incident.Incident, step incident.Step) error {
	if !cur.Open() || cur.Abort != nil || cur.Outcome != "" || cur.Step != step {
		return errStale
	}
	return nil
}

// transition journals the move to the next step — before the next stage acts on it.
func (e *Engine) transition(ctx context.Context, inc *incident.Incident, res result) error {
	msg := transitionPrefix + string(res.next)
	if res.note != "" {
		msg += ": " + res.note
	}
	_, err := e.j.Update(ctx, inc.ID, func(cur *incident.Incident) error {
		if err := sameStep(cur, inc.Step); err != nil {
			return err
		}
		if res.apply != nil {
			res.apply(cur)
		}
		now := e.now()
		cur.Step = res.next
		cur.UpdatedAt = now
		cur.Timeline = append(cur.Timeline, incident.Event{At: now, Step: res.next, Message: msg})
		return nil
	})
	if err != nil {
		return fmt.Errorf("journal %s → %s of %s: %w", inc.Step, res.next, inc.ID, err)
	}
	return nil
}

// decideClose journals the outcome (step unchanged); finish() then does the closing work and
// marks the incident closed. The split makes closing crash-safe: a restart finds the outcome
// and finishes, it never re-runs the step.
func (e *Engine) decideClose(ctx context.Context, inc *incident.Incident, res result) error {
	_, err := e.j.Update(ctx, inc.ID, func(cur *incident.Incident) error {
		if err := sameStep(cur, inc.Step); err != nil {
			return err
		}
		if res.apply != nil {
			res.apply(cur)
		}
		now := e.now()
		cur.Outcome = res.outcome
		cur.Reason = res.reason
		cur.UpdatedAt = now
		cur.Timeline = append(cur.Timeline, incident.Event{At: now, Step: inc.Step,
			Message: fmt.Sprintf("outcome %s: %s", res.outcome, res.reason)})
		return nil
	})
	if err != nil {
		return fmt.Errorf("journal outcome %s of %s: %w", res.outcome, inc.ID, err)
	}
	return nil
}

func (e *Engine) failpoint(name string) {
	if e.fail != nil {
		e.fail(name)
	}
}
