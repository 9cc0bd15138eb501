package remediate

import (
	"time"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// Result is what one execution of a stage concluded. Its shape is fixed by its constructors;
// act() is the one switch that turns it into a journal write, a metric label and a schedule,
// as controller-runtime's reconcile.Result is consumed by its controller.
type Result struct {
	action action
	// to is the step to enter (actionGoto); actionDone enters the step table's successor.
	to incident.Step
	// outcome is the incident's outcome (actionClose).
	outcome incident.Outcome
	// after is how long to wait before the stage runs again (actionRequeue).
	after time.Duration
	// status is the steps_total{result} label; statusPending (a poll that goes on) counts nothing.
	status status
	// msg is the timeline note, and for actionClose the incident's Reason.
	msg string
	// record is evidence journaled together with the result (the verdict, the recover answer);
	// commands the stage ran are added by the engine.
	record func(*incident.Incident)
}

type action int

const (
	actionRequeue action = iota // run the same step again after Result.after
	actionDone                  // the step is done: enter its successor in the step table
	actionGoto                  // enter Result.to (going back, e.g. re-containing)
	actionClose                 // end the incident with Result.outcome
)

// status is the result label of zmy_responder_steps_total.
type status string

const (
	statusPending status = ""        // a poll that goes on is not an attempt's end
	statusOK      status = "ok"      // the step did what it is for
	statusError   status = "error"   // it failed (and will retry, or hand over)
	statusTimeout status = "timeout" // it ran out of time
	statusSkipped status = "skipped" // a guard, a verdict or a human ended it: nothing more to do
)

var statuses = []status{statusOK, statusError, statusTimeout, statusSkipped}

// Retry delays, named here so that every "try again later" of the runbook is in one place.
const (
	retryRead      = time.Second            // the journal, breaker or cluster state could not be read
	retryProbe     = time.Second            // the prober itself failed (not a failed probe: that is evidence)
	retryTag       = time.Second            // the snapshot tag could not be journaled
	retrySnapshot  = 500 * time.Millisecond // some node still lacks the snapshot
	retryResume    = 500 * time.Millisecond // some node is still suspended after raft resume
	maxVerifyPoll  = time.Second            // verifying polls at gate_poll, but at least this often
	minRequeueWait = time.Millisecond
)

// Done says the step did its work: the incident enters the step table's successor.
func Done(note string) Result { return Result{action: actionDone, status: statusOK, msg: note} }

// Goto enters step, which need not be the successor (re-containing goes back).
func Goto(step incident.Step, note string) Result {
	return Result{action: actionGoto, to: step, status: statusOK, msg: note}
}

// Close ends the incident with outcome; the label follows from the outcome (closeStatus).
func Close(o incident.Outcome, reason string) Result {
	return Result{action: actionClose, outcome: o, status: closeStatus(o), msg: reason}
}

// CloseTimeout ends the incident because its step ran out of time.
func CloseTimeout(o incident.Outcome, reason string) Result {
	return Result{action: actionClose, outcome: o, status: statusTimeout, msg: reason}
}

// TakenOver ends the incident because a human stepped in: needs_human, nothing more to do.
func TakenOver(what string) Result {
	return Result{action: actionClose, outcome: incident.OutcomeNeedsHuman, status: statusSkipped,
		msg: "a human took over: " + what}
}

// Requeue runs the step again after d: a poll whose condition does not hold yet.
func Requeue(d time.Duration, why string) Result {
	return Result{action: actionRequeue, after: d, status: statusPending, msg: why}
}

// Retry runs the step again after d because this attempt failed.
func Retry(d time.Duration, why string) Result {
	return Result{action: actionRequeue, after: d, status: statusError, msg: why}
}

// With attaches evidence journaled together with the result.
func (r Result) With(record func(*incident.Incident)) Result {
	if record == nil {
		return r
	}
	prev := r.record
	if prev == nil {
		r.record = record
		return r
	}
	r.record = func(inc *incident.Incident) {
		if prev != nil {
			prev(inc)
		}
		record(inc)
	}
	return r
}

// closeStatus labels an outcome: the runbook's success, its failure, or a refusal.
func closeStatus(o incident.Outcome) status {
	switch o {
	case incident.OutcomeRecovered:
		return statusOK
	case incident.OutcomeNeedsHuman, incident.OutcomeFailed:
		return statusError
	}
	return statusSkipped // a guard or verdict ended the incident: nothing more to do
}
