// Package remediate owns the runbook: SPEC §4's state machine that takes a confirmed ZMY
// split-brain from `received` to `closed`. Each step is a small Stage that reads the real state
// of the nodes before acting (level-based), every transition is journaled before it is acted on,
// guards (pause, breaker, blast radius, anti-flap, dry-run) are stages of their own, and the
// decisions they take are pure functions of data and a clock (decide.go).
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
package remediate
