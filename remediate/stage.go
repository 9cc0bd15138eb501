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
	Exec(ctx context.Context, sc *stageCtx) Result
}

// StageFunc adapts a function to Stage.
type StageFunc func(ctx context.Context, sc *stageCtx) Result

// Exec calls f.
func (f StageFunc) Exec(ctx context.Context, sc *stageCtx) Result { return f(ctx, sc) }

// stageCtx is what a stage works with: the incident as read at the start of the step, the
// cluster's config, the step's deadline, the narrow collaborators of deps, and the commands
// run so far (journaled with the result).
type stageCtx struct {
	inc      *incident.Incident
	cfg      *config.Config
	cluster  *config.ClusterConfig
	deadline time.Time
	// self is who this runbook is on the nodes (ZMY_ACTOR of its commands).
	self zmy.Actor
	deps
	// states is what the step's requirements read of the nodes just before the stage ran.
	states map[string]zmy.RaftState

	mu   sync.Mutex
	cmds []incident.Command
}

// deps are the parts of the engine a stage may use, each as narrow as the stages need it. The
// engine fills them for every execution; stage tests pass fakes.
type deps struct {
	driver  Nodes         // the cluster's node driver
	prober  Prober        // confirming, the gate, verifying
	journal incidentStore // journaling an intent or the snapshot tag inside a step
	now     func() time.Time
	slots   *prioSemaphore // every node command holds a slot (containment first)
	humans  humans         // nil when silencing is disabled (no alertmanager.url)
	claims  claimer        // guarding: blast radius and anti-flap across incidents
	guards  guardReader    // guarding: breaker and cluster state
	// contained observes the time from the first alert to every node suspended.
	contained func(time.Duration)
	// plan renders the incident's plan (confirming journals it with the verdict).
	plan func() []string
	// fail is the failpoint hook (tests); nil in production.
	fail func(name string)
}

// humans is how the runbook keeps its silence and learns that a human stepped in.
type humans interface {
	// takenOver asks Alertmanager whether a human's silence covers the incident's cluster and
	// says who and which ("" when nobody did; an unreachable Alertmanager does not block).
	takenOver(ctx context.Context, inc *incident.Incident) string
	// silence creates the incident's one silence, or adopts the one a crash left.
	silence(ctx context.Context, inc *incident.Incident) error
}

// claimer serializes the guards' view of which incidents are remediating which cluster.
type claimer interface {
	// claim runs decide with the other incidents holding a claim (id → cluster) and, if it
	// lets the incident through, claims cluster for it; atomically, so that two incidents
	// cannot both pass blast radius at once.
	claim(ctx context.Context, id, cluster string, decide func(others map[string]string) (guard string, ref *refusal)) (string, *refusal, error)
}

// guardReader reads the durable state the guards decide from.
type guardReader interface {
	breakerState(ctx context.Context, cluster string) (BreakerState, error)
	clusterState(ctx context.Context, cluster string) (clusterState, error)
}

// incidentStore is the part of the journal a stage may write to: one update of its incident.
type incidentStore interface {
	Update(ctx context.Context, id string, fn func(*incident.Incident) error) (*incident.Incident, error)
}

func (sc *stageCtx) failpoint(name string) {
	if sc.fail != nil {
		sc.fail(name)
	}
}

// execStep runs the stage of the incident's step under the step's deadline, after the step's
// requirements, and counts it.
func (e *Engine) execStep(ctx context.Context, r *runner, inc *incident.Incident) Result {
	cfg, cc, nodes, sil := e.snapshot(inc.Cluster)
	if cc == nil || nodes == nil {
		return e.endNow(inc, fmt.Sprintf("cluster %s is no longer configured", inc.Cluster))
	}
	spec, ok := specOf(inc.Step)
	if !ok {
		return Close(incident.OutcomeFailed, fmt.Sprintf("no stage for step %q", inc.Step))
	}
	if t := e.takeoverOf(r); t != "" {
		return TakenOver(t)
	}
	deadline := stepDeadline(inc, cfg, cc)
	e.m.stepDeadline.WithLabelValues(inc.Cluster).Set(float64(deadline.UnixNano()) / 1e9)
	start := e.now()
	if !start.Before(deadline) {
		res := timedOut(inc, r.lastNote)
		e.count(inc.Step, res, 0)
		return res
	}
	self := e.actor(ctx, inc.ID)
	sctx, cancel := context.WithDeadline(zmy.WithActor(ctx, self.String()), deadline)
	defer cancel()
	e.mu.Lock()
	r.stageCancel = cancel
	e.mu.Unlock()
	nodes = actingNodes{Nodes: nodes, acting: func() (incident.Fence, error) { return e.lead.Acting(inc.Cluster) }}
	sc := &stageCtx{inc: inc, cfg: cfg, cluster: cc, deadline: deadline, self: self, deps: e.deps(r, inc, cfg, cc, nodes, sil)}
	res, held := sc.require(sctx, spec)
	if held {
		res = spec.stage(sctx, sc)
	}
	e.mu.Lock()
	r.stageCancel = nil
	e.mu.Unlock()
	res = settle(res, e.takeoverOf(r), sctx.Err(), inc)
	res = res.With(sc.takeCommands())
	if res.msg != "" {
		r.lastNote = res.msg
	}
	e.count(inc.Step, res, e.now().Sub(start))
	return res
}

// settle is where the engine's knowledge overrides what a stage concluded, in this order: a
// human's takeover seen while it ran (the stage was cancelled; its evidence is kept), then
// its deadline passing before it reached a decision.
func settle(res Result, takeover string, ctxErr error, inc *incident.Incident) Result {
	if takeover != "" {
		return TakenOver(takeover).With(res.record)
	}
	if res.action == actionRequeue && errors.Is(ctxErr, context.DeadlineExceeded) {
		return timedOut(inc, res.msg).With(res.record)
	}
	return res
}

// deps builds what a stage of incident inc may use.
func (e *Engine) deps(r *runner, inc *incident.Incident, cfg *config.Config, cc *config.ClusterConfig, nodes Nodes, sil *silencer) deps {
	d := deps{
		driver: nodes, prober: e.p, journal: e.j, now: e.now, slots: e.sem,
		claims: storeClaims{j: e.j}, guards: e,
		contained: func(d time.Duration) { e.m.contained(inc.Cluster, d) },
		plan:      func() []string { return planSteps(cfg, cc) },
		fail:      e.fail,
	}
	if sil != nil {
		d.humans = runnerHumans{e: e, r: r, sil: sil}
	}
	return d
}

// stepDeadline is when the incident's current step runs out of time: as journaled when the
// step was entered, so that a restart keeps it. The first step's is computed from when the
// incident was opened.
func stepDeadline(inc *incident.Incident, cfg *config.Config, cc *config.ClusterConfig) time.Time {
	if inc.StepDeadline != nil {
		return *inc.StepDeadline
	}
	entered := inc.StepEnteredAt
	if entered.IsZero() {
		entered = inc.OpenedAt
	}
	return entered.Add(stepBudget(inc.Step, cfg, cc))
}

// takeCommands moves the commands a stage ran into a journal update.
func (sc *stageCtx) takeCommands() func(*incident.Incident) {
	sc.mu.Lock()
	cmds := sc.cmds
	sc.cmds = nil
	sc.mu.Unlock()
	return func(inc *incident.Incident) { inc.Commands = append(inc.Commands, cmds...) }
}

// timedOut is the result of a step that ran out of time: before anything was mutated the
// verdict could not be reached (inconclusive); after, a human must look.
func timedOut(inc *incident.Incident, last string) Result {
	why := fmt.Sprintf("step %s ran out of time", inc.Step)
	if last != "" {
		why += ": " + last
	}
	if inc.RemediationStarted || pastGuards(inc.Step) {
		return CloseTimeout(incident.OutcomeNeedsHuman, why)
	}
	return CloseTimeout(incident.OutcomeInconclusive, why)
}

// endNow is the outcome for an incident the engine cannot work on any more.
func (e *Engine) endNow(inc *incident.Incident, why string) Result {
	res := Close(incident.OutcomeFailed, why)
	if inc.RemediationStarted {
		res = Close(incident.OutcomeNeedsHuman, why)
	}
	res.status = statusError
	return res
}

// count records one step attempt: its duration and its result label.
func (e *Engine) count(step incident.Step, res Result, d time.Duration) {
	if res.status == statusPending {
		return
	}
	e.m.steps.WithLabelValues(string(step), string(res.status)).Inc()
	if d > 0 {
		e.m.stepDuration.WithLabelValues(string(step)).Observe(d.Seconds())
	}
}

// act journals the stage's result — the one place where results become actions. It returns
// how long to wait before the next look.
func (e *Engine) act(ctx context.Context, r *runner, inc *incident.Incident, res Result) (time.Duration, error) {
	switch res.action {
	case actionClose:
		if err := e.decideClose(ctx, inc, res); err != nil {
			return 0, err
		}
		return 0, e.finish(ctx, r, inc.ID)
	case actionDone, actionGoto:
		to := res.to
		if res.action == actionDone {
			spec, _ := specOf(inc.Step)
			if to = spec.next; to == "" {
				return e.act(ctx, r, inc, Close(incident.OutcomeFailed, fmt.Sprintf("step %s has no successor", inc.Step)))
			}
		}
		if err := e.transition(ctx, inc, to, res); err != nil {
			return 0, err
		}
		r.journaledNote = "" // a new step: its first note is journaled even if an earlier step said the same
		e.failpoint("enter:" + string(to))
		return 0, nil
	default: // actionRequeue
		if res.record != nil || (res.msg != "" && res.msg != r.journaledNote) {
			note := res.msg
			_, err := e.j.Update(ctx, inc.ID, func(cur *incident.Incident) error {
				if err := sameStep(cur, inc.Step); err != nil {
					return err
				}
				if res.record != nil {
					res.record(cur)
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
		return max(res.after, minRequeueWait), nil
	}
}

// sameStep refuses an update if the stored incident moved on (aborted, closed, or stepped).
func sameStep(cur *incident.Incident, step incident.Step) error {
	if !cur.Open() || cur.Abort != nil || cur.Outcome != "" || cur.Step != step {
		return errStale
	}
	return nil
}

// transition journals the move to step to — before its stage acts — with when it was entered
// and its deadline.
func (e *Engine) transition(ctx context.Context, inc *incident.Incident, to incident.Step, res Result) error {
	msg := "entered " + string(to)
	if res.msg != "" {
		msg += ": " + res.msg
	}
	cfg, cc, _, _ := e.snapshot(inc.Cluster)
	_, err := e.j.Update(ctx, inc.ID, func(cur *incident.Incident) error {
		if err := sameStep(cur, inc.Step); err != nil {
			return err
		}
		if res.record != nil {
			res.record(cur)
		}
		now := e.now()
		cur.Step = to
		cur.StepEnteredAt = now
		cur.StepDeadline = nil
		if cc != nil {
			d := now.Add(stepBudget(to, cfg, cc))
			cur.StepDeadline = &d
		}
		cur.UpdatedAt = now
		cur.Timeline = append(cur.Timeline, incident.Event{At: now, Step: to, Message: msg})
		return nil
	})
	if err != nil {
		return fmt.Errorf("journal %s → %s of %s: %w", inc.Step, to, inc.ID, err)
	}
	return nil
}

// decideClose journals the outcome (step unchanged); finish() then does the closing work and
// marks the incident closed. The split makes closing crash-safe: a restart finds the outcome
// and finishes, it never re-runs the step.
func (e *Engine) decideClose(ctx context.Context, inc *incident.Incident, res Result) error {
	_, err := e.j.Update(ctx, inc.ID, func(cur *incident.Incident) error {
		if err := sameStep(cur, inc.Step); err != nil {
			return err
		}
		if res.record != nil {
			res.record(cur)
		}
		now := e.now()
		cur.Outcome = res.outcome
		cur.Reason = res.msg
		cur.UpdatedAt = now
		cur.Timeline = append(cur.Timeline, incident.Event{At: now, Step: inc.Step,
			Message: fmt.Sprintf("outcome %s: %s", res.outcome, res.msg)})
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
