package remediate

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// The decisions of the runbook. Every function here is pure: data and a clock in, a decision
// out, no I/O, so each is table-tested in decide_test.go.

// afterVerdict says whether a verdict lets the incident go on, or the outcome it ends with.
func afterVerdict(v *incident.Verdict) (proceed bool, end incident.Outcome, reason string) {
	switch {
	case v == nil:
		return false, incident.OutcomeInconclusive, "no verdict"
	case v.Kind == incident.VerdictConfirmed:
		return true, "", ""
	case v.Kind == incident.VerdictNotConfirmed:
		return false, incident.OutcomeNotConfirmed, "split-brain not confirmed: " + v.Reason
	default:
		return false, incident.OutcomeInconclusive, "verdict inconclusive: " + v.Reason
	}
}

// selfHealed reports whether the alert resolved before anything was mutated: a resolved
// notification arrived and no firing one came after it.
func selfHealed(inc *incident.Incident) bool {
	if inc.RemediationStarted || inc.ResolvedAt == nil {
		return false
	}
	for _, a := range inc.Alerts {
		if a.Status == "firing" && a.ReceivedAt.After(*inc.ResolvedAt) {
			return false
		}
	}
	return true
}

// guardInput is everything the guards decide from, read once per guarding step.
type guardInput struct {
	Now     time.Time
	Cluster string
	Paused  *PauseState
	Breaker BreakerState
	// Remediating are the other open incidents (id → cluster) that passed the guards and are
	// not closed: they count against blast radius, and one on the same cluster is a flap.
	Remediating   map[string]string
	TotalClusters int
	LastFinished  *time.Time // when the last remediation of this cluster finished
	LastIncident  string
	DryRun        bool
	Cfg           config.RemediationConfig
	// AntiFlapOverride is a human's decision to skip the anti-flap period (a retry).
	AntiFlapOverride *incident.Approval
}

// refusal is a guard saying no: the incident ends with Outcome.
type refusal struct {
	Outcome incident.Outcome
	Reason  string
}

// A guard is one pure check; nil means go on.
type guard func(in guardInput) *refusal

// guards run in this order: a human's kill switch first, dry-run last so that a dry run still
// reports what the other guards would have said.
var guards = []struct {
	name string
	fn   guard
}{
	{"paused", guardPaused},
	{"breaker", guardBreaker},
	{"blast_radius", guardBlastRadius},
	{"anti_flap", guardAntiFlap},
	{"dry_run", guardDryRun},
}

func guardPaused(in guardInput) *refusal {
	if in.Paused == nil {
		return nil
	}
	return &refusal{incident.OutcomePaused, fmt.Sprintf("cluster %s paused by %s at %s: %s",
		in.Cluster, in.Paused.By, in.Paused.At.UTC().Format(time.RFC3339), in.Paused.Reason)}
}

func guardBreaker(in guardInput) *refusal {
	if in.Breaker != BreakerOpen {
		return nil
	}
	return &refusal{incident.OutcomeBreakerOpen, fmt.Sprintf(
		"circuit breaker of cluster %s is open after %d consecutive failed remediations",
		in.Cluster, in.Cfg.Breaker.ConsecutiveFailures)}
}

func guardBlastRadius(in guardInput) *refusal {
	others := map[string]bool{}
	for _, c := range in.Remediating {
		if c != in.Cluster {
			others[c] = true
		}
	}
	limit := blastRadiusLimit(in.TotalClusters, in.Cfg.BlastRadius)
	if len(others)+1 <= limit {
		return nil
	}
	names := make([]string, 0, len(others))
	for c := range others {
		names = append(names, c)
	}
	slices.Sort(names)
	return &refusal{incident.OutcomeBlastRadius, fmt.Sprintf(
		"%d other clusters are being remediated (%s); at most %d at once",
		len(others), strings.Join(names, ","), limit)}
}

// blastRadiusLimit is how many clusters may be remediated at once: both bounds apply, but the
// percent bound never forbids the first cluster. Zero disables a bound.
func blastRadiusLimit(total int, c config.BlastRadiusConfig) int {
	limit := math.MaxInt
	if c.MaxClusters > 0 {
		limit = c.MaxClusters
	}
	if c.MaxPercent > 0 {
		pct := max(1, int(math.Floor(float64(total)*c.MaxPercent/100)))
		limit = min(limit, pct)
	}
	return limit
}

func guardAntiFlap(in guardInput) *refusal {
	for id, c := range in.Remediating {
		if c == in.Cluster {
			return &refusal{incident.OutcomeAntiFlap, fmt.Sprintf(
				"cluster %s is already being remediated by %s", in.Cluster, id)}
		}
	}
	if in.LastFinished == nil || in.Cfg.AntiFlap <= 0 || in.AntiFlapOverride != nil {
		// A human who asked to retry an anti_flap refusal overrides the period (never the
		// rule above: one remediation of a cluster at a time).
		return nil
	}
	since := in.Now.Sub(*in.LastFinished)
	if since >= time.Duration(in.Cfg.AntiFlap) {
		return nil
	}
	return &refusal{incident.OutcomeAntiFlap, fmt.Sprintf(
		"cluster %s was remediated %s ago by %s; anti-flap period is %s",
		in.Cluster, since.Round(time.Millisecond), in.LastIncident, in.Cfg.AntiFlap)}
}

func guardDryRun(in guardInput) *refusal {
	if !in.DryRun {
		return nil
	}
	return &refusal{incident.OutcomeDryRun, "dry run: plan and evidence recorded, nothing mutated"}
}

// runGuards returns the first refusal, and the name of the guard that refused.
func runGuards(in guardInput) (string, *refusal) {
	for _, g := range guards {
		if r := g.fn(in); r != nil {
			return g.name, r
		}
	}
	return "", nil
}

// dryRun is the effective dry-run setting of a cluster.
func dryRun(cfg *config.Config, c *config.ClusterConfig) bool {
	if c != nil && c.DryRun != nil {
		return *c.DryRun
	}
	return cfg.Remediation.DryRun
}

// requireApproval is the effective require_approval setting of a cluster.
func requireApproval(cfg *config.Config, c *config.ClusterConfig) bool {
	if c != nil && c.RequireApproval != nil {
		return *c.RequireApproval
	}
	return cfg.Remediation.RequireApproval
}

// Approvable reports whether Approve is accepted now: once a confirmed verdict exists and until
// the gate has been passed (the step table's approvable steps).
func Approvable(inc *incident.Incident) bool { return approvable(inc) }

func approvable(inc *incident.Incident) bool {
	if !inc.Open() || inc.Abort != nil {
		return false
	}
	spec, ok := specOf(inc.Step)
	return ok && spec.approvable && inc.Verdict != nil && inc.Verdict.Kind == incident.VerdictConfirmed
}

// currentApproval is the latest approval that still counts: one given after the last
// re-containment (an approval of the world before it does not approve the world after).
func currentApproval(inc *incident.Incident) *incident.Approval {
	if len(inc.Approvals) == 0 {
		return nil
	}
	a := &inc.Approvals[len(inc.Approvals)-1]
	if inc.RecontainedAt != nil && !a.At.After(*inc.RecontainedAt) {
		return nil
	}
	return a
}

// Conditions the recovery gate waits for (incident.GateStatus.WaitingFor).
const (
	waitNetwork  = "network"
	waitEtcd     = "etcd"
	waitApproval = "approval"
)

// gateStatus is the gate as an operator reads it: what it still waits for, and the values it
// waits on. A gate whose probes failed waits for the network (it could not be read).
func gateStatus(g incident.Gate, gateErr error, approved, needApproval bool, since, deadline, now time.Time) incident.GateStatus {
	st := incident.GateStatus{WaitingFor: []string{}, Since: since, Deadline: deadline, CheckedAt: now,
		PartitionScore: g.PartitionScore, UnhealthyEtcd: g.UnhealthyEtcd, Reason: g.Reason}
	switch {
	case gateErr != nil:
		st.WaitingFor = append(st.WaitingFor, waitNetwork)
		st.Reason = "gate probe failed: " + gateErr.Error()
	default:
		if !g.NetworkConverged {
			st.WaitingFor = append(st.WaitingFor, waitNetwork)
		}
		if !g.EtcdHealthy {
			st.WaitingFor = append(st.WaitingFor, waitEtcd)
		}
	}
	if needApproval && !approved {
		st.WaitingFor = append(st.WaitingFor, waitApproval)
	}
	return st
}

// sameGate reports whether two readings differ only in when they were taken.
func sameGate(a *incident.GateStatus, b incident.GateStatus) bool {
	return a != nil && slices.Equal(a.WaitingFor, b.WaitingFor) && a.PartitionScore == b.PartitionScore &&
		slices.Equal(a.UnhealthyEtcd, b.UnhealthyEtcd) && a.Reason == b.Reason && a.Deadline.Equal(b.Deadline)
}

// gateDecision is what the recovery gate does next.
type gateDecision int

const (
	gateWait    gateDecision = iota // poll again
	gateOpen                        // go on to arbitrating
	gateTimeout                     // give up: needs_human
)

// decideGate combines the gate reading, the approvals and the deadline. reason says what is
// still missing (for the timeline and, on timeout, the incident's Reason).
func decideGate(g incident.Gate, gateErr error, approved, needApproval bool, deadline, now time.Time) (gateDecision, string) {
	var missing []string
	switch {
	case gateErr != nil:
		missing = append(missing, "gate probe failed: "+gateErr.Error())
	case !g.Open():
		r := g.Reason
		if r == "" {
			r = fmt.Sprintf("network converged=%v etcd healthy=%v", g.NetworkConverged, g.EtcdHealthy)
		}
		missing = append(missing, r)
	}
	if needApproval && !approved {
		missing = append(missing, "waiting for a human approval")
	}
	if len(missing) == 0 {
		return gateOpen, "gate open"
	}
	reason := strings.Join(missing, "; ")
	if !now.Before(deadline) {
		return gateTimeout, "recovery gate timed out: " + reason
	}
	return gateWait, reason
}

// decideRecover checks `quorum recover --auto`'s answer: it must name one strict majority of
// the configured nodes. Anything else stops the runbook (never a resume).
func decideRecover(res *zmy.RecoverResult, err error, nodes []string) (ok bool, reason string) {
	if err != nil {
		return false, "quorum recover --auto failed: " + err.Error()
	}
	if res == nil || len(res.Majority) == 0 {
		return false, "quorum recover --auto named no majority"
	}
	known := 0
	seen := map[string]bool{}
	for _, m := range res.Majority {
		if slices.Contains(nodes, m) && !seen[m] {
			known++
			seen[m] = true
		}
	}
	// Defence in depth: never treat a group of at most half the nodes as the majority, even if
	// zmyctl says so.
	if known*2 <= len(nodes) {
		return false, fmt.Sprintf("quorum recover --auto named %s: %d of %d nodes is not a strict majority",
			strings.Join(res.Majority, ","), known, len(nodes))
	}
	return true, fmt.Sprintf("majority %s, leader %s, term %d, %d divergent entries discarded",
		strings.Join(res.Majority, ","), res.Leader, res.Term, res.Discarded)
}

// decideVerify maps the post-resume verdict onto done/outcome.
func decideVerify(v *incident.Verdict, err error, deadline, now time.Time) (done bool, end incident.Outcome, reason string) {
	if err == nil && v != nil && v.Healthy {
		return true, incident.OutcomeRecovered, "cluster healthy again: quorum up, one leader, shard indexes equal"
	}
	why := "cluster not healthy yet"
	if err != nil {
		why = "verify probe failed: " + err.Error()
	} else if v != nil && v.Reason != "" {
		why = "cluster not healthy yet: " + v.Reason
	}
	if !now.Before(deadline) {
		return true, incident.OutcomeNeedsHuman, "verification timed out: " + why
	}
	return false, "", why
}

// notSuspended lists the nodes whose raft state is not suspended (unknown counts as not).
func notSuspended(nodes []string, states map[string]string) []string {
	var out []string
	for _, n := range nodes {
		if states[n] != zmy.StateSuspended {
			out = append(out, n)
		}
	}
	return out
}

// missingSnapshot lists the nodes whose snapshot list lacks tag (unknown counts as missing).
func missingSnapshot(nodes []string, lists map[string][]zmy.Snapshot, tag string) []string {
	var out []string
	for _, n := range nodes {
		l, ok := lists[n]
		if !ok || !slices.ContainsFunc(l, func(s zmy.Snapshot) bool { return s.Tag == tag }) {
			out = append(out, n)
		}
	}
	return out
}

// snapshotTag is the SOP's tag, chosen once per incident.
// After a re-containment the tag says so: the nodes took writes since the first snapshots, and a
// save under the first tag (possibly the same second) would return the old snapshot.
func snapshotTag(now time.Time, recontained int) string {
	if recontained > 0 {
		return fmt.Sprintf("pre-recover-%d-r%d", now.Unix(), recontained)
	}
	return fmt.Sprintf("pre-recover-%d", now.Unix())
}

// firstReceived is when the first alert of the incident reached us.
func firstReceived(inc *incident.Incident) time.Time {
	var first time.Time
	for _, a := range inc.Alerts {
		if !a.ReceivedAt.IsZero() && (first.IsZero() || a.ReceivedAt.Before(first)) {
			first = a.ReceivedAt
		}
	}
	if first.IsZero() {
		return inc.OpenedAt
	}
	return first
}

// foreignSuspends lists the nodes suspended by someone other than this responder: another
// responder (another journal), or a human who named themselves. An earlier incident of this
// journal that left nodes suspended is this responder's own doing; a node that does not say
// who suspended it is not listed either: the node contract makes suspended_by optional.
func foreignSuspends(ids []string, states map[string]zmy.RaftState, self zmy.Actor) []string {
	var out []string
	for _, id := range ids {
		st, ok := states[id]
		if !ok || st.RaftState != zmy.StateSuspended || st.SuspendedBy == "" {
			continue
		}
		if a, ok := zmy.ParseActor(st.SuspendedBy); ok && a.SameJournal(self) {
			continue
		}
		out = append(out, id)
	}
	return out
}

// describeForeign says who suspended each foreign node.
func describeForeign(ids []string, states map[string]zmy.RaftState) string {
	parts := make([]string, 0, len(ids))
	for _, id := range ids {
		parts = append(parts, fmt.Sprintf("%s by %q", id, states[id].SuspendedBy))
	}
	return strings.Join(parts, ", ")
}

// describeRoles lists nodes with their raft state, for reasons: "n2 (leader), n4 (follower)".
func describeRoles(ids []string, states map[string]zmy.RaftState) string {
	parts := make([]string, 0, len(ids))
	for _, id := range ids {
		parts = append(parts, fmt.Sprintf("%s (%s)", id, states[id].RaftState))
	}
	return strings.Join(parts, ", ")
}

// recoverLanded says what the nodes report of a recover sent when their highest term was
// before: landed is true when some node's term moved past it (recover starts a new term and
// suspended nodes elect nobody), and last is the recover they report, if they report one
// newer than before.
func recoverLanded(states map[string]zmy.RaftState, before uint64) (landed bool, last *zmy.LastRecover) {
	for _, st := range states {
		if st.Term > before {
			landed = true
		}
		if lr := st.LastRecover; lr != nil && lr.Term > before && (last == nil || lr.Term > last.Term) {
			last = lr
		}
	}
	return landed || last != nil, last
}

// highestTerm is the highest raft term the nodes report.
func highestTerm(states map[string]zmy.RaftState) uint64 {
	var t uint64
	for _, st := range states {
		t = max(t, st.Term)
	}
	return t
}
