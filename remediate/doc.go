// Package remediate owns the runbook: the incident state machine that takes a confirmed ZMY
// split-brain from `received` to `closed`. The order of the steps, their budgets and what each
// requires is one table (steps.go); each step is a small Stage that reads the real state of the
// nodes before acting (level-based) and answers a typed Result; every transition is journaled
// before it is acted on; guards (pause, breaker, blast radius, anti-flap, dry-run) are a stage
// of their own, and the decisions they take are pure functions of data and a clock (decide.go).
//
// Decisions this package takes where the issue left a choice:
//
//   - Approval is accepted once a confirmed verdict exists (steps guarding … awaiting_recovery)
//     and honoured at the gate; before the verdict there is nothing a human could have looked at,
//     so an approval then is refused with incident.ErrConflict, as is one after the gate.
//   - The silence stays in place while the gate waits for approval: the approval request is
//     visible on the incident; gate_timeout (then needs_human) expires it so humans get paged.
//   - Blast radius: both bounds apply (max_clusters, and max_percent of configured clusters
//     rounded down), but the percent bound never forbids the first cluster, so a single-cluster
//     deployment with the defaults can be remediated.
//   - Anti-flap counts every remediation that mutated a node (whatever its outcome) and also a
//     remediation of the same cluster still in flight (another alertname).
//   - The breaker counts recovered as a success, needs_human and failed as failures; aborted is
//     a human decision and is not counted either way.
//   - Pause is the kill switch for new remediations (the paused guard); an incident already past
//     the guards goes on until it ends or a human aborts it.
//   - A silence covering the cluster that someone else created is a takeover — the current
//     stage is cancelled, the incident ends needs_human naming the silence and its author, and
//     our own silence is expired — unless its comment matches silences.ack_comment_regex
//     ("ACK! …"): then it is an acknowledgement, recorded, and the runbook goes on. When in
//     doubt the human wins. A silence of ours that a human expired is not put back (noticed
//     within silences.watch_interval, counted as human_expired).
//   - An acknowledgement (by silence or through the API) never approves anything.
//   - Our silences are recognised by created_by, the incident id in the comment and the cluster
//     matcher together, so deployments sharing an Alertmanager never adopt or expire each
//     other's.
//   - Every mutation is journaled as an intent right before it is sent. Containment without its
//     intent suspends every node at once and then verifies; with it (a restart) it asks the
//     nodes first and suspends only those not suspended.
//   - A step's deadline is journaled when the step is entered: a reload changes the budgets of
//     steps entered after it, never the deadline of the step an incident is in.
package remediate
