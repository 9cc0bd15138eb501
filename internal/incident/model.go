// Package incident owns the incident record (this file) and its two stores: the crash-safe bbolt
// journal of a single replica, and the etcd store that replicas share. The record is what an SRE reads: the alerts that opened it, the verdict and its
// evidence, the plan, every command run with its output, silences, approvals and the outcome.
package incident

import (
	"time"

	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// Step is where an incident is in the runbook's state machine (remediate's step table).
type Step string

const (
	StepReceived         Step = "received"
	StepConfirming       Step = "confirming"
	StepGuarding         Step = "guarding" // guards: paused, breaker, blast radius, anti-flap, dry-run
	StepSilencing        Step = "silencing"
	StepContaining       Step = "containing"
	StepSnapshotting     Step = "snapshotting"
	StepAwaitingRecovery Step = "awaiting_recovery"
	StepArbitrating      Step = "arbitrating"
	StepResuming         Step = "resuming"
	StepVerifying        Step = "verifying"
	StepClosed           Step = "closed" // terminal; Outcome says how it ended
)

// Outcome is how a closed incident ended.
type Outcome string

const (
	OutcomeRecovered      Outcome = "recovered"
	OutcomeNotConfirmed   Outcome = "not_confirmed"
	OutcomeInconclusive   Outcome = "inconclusive"
	OutcomeSelfHealed     Outcome = "self_healed" // alert resolved / cluster healthy before we acted
	OutcomeDryRun         Outcome = "dry_run"
	OutcomePaused         Outcome = "paused"
	OutcomeBreakerOpen    Outcome = "breaker_open"
	OutcomeBlastRadius    Outcome = "blast_radius"
	OutcomeAntiFlap       Outcome = "anti_flap"
	OutcomeAborted        Outcome = "aborted"
	OutcomeNeedsHuman     Outcome = "needs_human"
	OutcomeFailed         Outcome = "failed"
	OutcomeUnknownCluster Outcome = "unknown_cluster" // alert for a cluster the config does not know
)

// Outcomes lists every outcome; metrics pre-create their label values from it.
var Outcomes = []Outcome{OutcomeRecovered, OutcomeNotConfirmed, OutcomeInconclusive,
	OutcomeSelfHealed, OutcomeDryRun, OutcomePaused, OutcomeBreakerOpen, OutcomeBlastRadius,
	OutcomeAntiFlap, OutcomeAborted, OutcomeNeedsHuman, OutcomeFailed, OutcomeUnknownCluster}

// Incident is one (cluster, alertname) problem while it is open. Duplicate deliveries attach
// to it; it is closed once Outcome is set and Step is StepClosed.
type Incident struct {
	ID        string `json:"id"` // "inc-000001", from the journal's sequence
	Cluster   string `json:"cluster"`
	Alertname string `json:"alertname"`
	Step      Step   `json:"step"`
	// StepEnteredAt is when the incident entered Step, and StepDeadline when that step runs out
	// of time; both are journaled with the transition so a restart keeps the same deadline.
	StepEnteredAt time.Time  `json:"step_entered_at,omitzero"`
	StepDeadline  *time.Time `json:"step_deadline,omitempty"`
	Outcome       Outcome    `json:"outcome,omitempty"`
	Reason        string     `json:"reason,omitempty"` // why it ended as it did, one sentence
	OpenedAt      time.Time  `json:"opened_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	ClosedAt      *time.Time `json:"closed_at,omitempty"`

	Alerts          []AlertRecord `json:"alerts"`
	TruncatedAlerts int           `json:"truncated_alerts,omitempty"` // sum of truncatedAlerts seen
	ResolvedAt      *time.Time    `json:"resolved_at,omitempty"`      // a resolved notification arrived
	// DroppedAlerts counts deliveries of new alerts that were not stored because the incident
	// already held its cap of distinct alerts (Delivery.MaxAlerts); resends of a dropped alert
	// count again. Kept beside the record, not in it: reads fill it in, writes ignore it.
	DroppedAlerts int `json:"dropped_alerts,omitempty"`

	Verdict   *Verdict   `json:"verdict,omitempty"`
	Plan      []string   `json:"plan,omitempty"`
	Timeline  []Event    `json:"timeline"`
	Commands  []Command  `json:"commands,omitempty"`
	Silences  []Silence  `json:"silences,omitempty"`
	Intents   []Intent   `json:"intents,omitempty"`
	Approvals []Approval `json:"approvals,omitempty"`
	Acks      []Ack      `json:"acks,omitempty"`
	// Gate is what the recovery gate waits for, while the incident is at awaiting_recovery.
	Gate *GateStatus `json:"gate,omitempty"`
	// RetryOf is the closed incident this one re-evaluates (POST …/retry, or an unpause);
	// RetriedBy is, on that one, the incident that re-evaluates it.
	RetryOf   string `json:"retry_of,omitempty"`
	RetriedBy string `json:"retried_by,omitempty"`
	// AntiFlapOverride is a human's decision that this re-evaluation skips the anti-flap guard
	// (a retry of an incident that closed anti_flap).
	AntiFlapOverride *Approval          `json:"anti_flap_override,omitempty"`
	Abort            *Approval          `json:"abort,omitempty"`
	SnapshotTag      string             `json:"snapshot_tag,omitempty"` // pre-recover-<unix>, fixed once chosen
	Recovery         *zmy.RecoverResult `json:"recovery,omitempty"`     // set only after quorum recover succeeded

	// RemediationStarted is set (and journaled) before the first mutating command; with the
	// open-incident dedup it makes remediation happen at most once per incident.
	RemediationStarted bool       `json:"remediation_started"`
	ContainedAt        *time.Time `json:"contained_at,omitempty"`
	// Recontained counts the times a node was found writable again after containment and the
	// runbook went back to contain it (at most once; the second time is for a human).
	Recontained int `json:"recontained,omitempty"`
	// RecontainedAt is when it last did: approvals given before it approved another world.
	RecontainedAt *time.Time `json:"recontained_at,omitempty"`
}

// Open reports whether the incident is not yet closed.
func (i *Incident) Open() bool { return i.Step != StepClosed }

// AlertRecord is one alert of one delivery, as Alertmanager sent it.
type AlertRecord struct {
	GroupKey    string            `json:"group_key"`
	Receiver    string            `json:"receiver"`
	ExternalURL string            `json:"external_url"` // the sending Alertmanager
	Fingerprint string            `json:"fingerprint"`
	Status      string            `json:"status"` // firing | resolved
	Labels      map[string]string `json:"labels"`
	StartsAt    time.Time         `json:"starts_at"`
	EndsAt      time.Time         `json:"ends_at"`
	ReceivedAt  time.Time         `json:"received_at"` // first delivery
	// Deliveries counts how many times this (fingerprint, startsAt, status) arrived: replicas,
	// retries and repeat_interval resends are counted here instead of being stored again.
	Deliveries int       `json:"deliveries"`
	LastSeen   time.Time `json:"last_seen"` // latest delivery
}

// Event is one line of the incident's timeline.
type Event struct {
	At      time.Time `json:"at"`
	Step    Step      `json:"step"`
	Message string    `json:"message"`
}

// Command is one zmyctl invocation made on the incident's behalf, kept as evidence.
type Command struct {
	Node     string        `json:"node"`
	Args     []string      `json:"args"`
	Step     Step          `json:"step"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	Exit     int           `json:"exit"`
	Output   string        `json:"output,omitempty"` // capped excerpt
	Error    string        `json:"error,omitempty"`
}

// Intent is a mutation journaled right before it is sent to the nodes. After a crash the
// runbook finds it, knows the mutation may have landed, and asks the nodes before sending it
// again: a mutation runs at most once per node, whatever the number of restarts.
type Intent struct {
	Step    Step      `json:"step"`
	Command string    `json:"command"` // suspend, snapshot_save, recover, resume (zmy command names)
	Nodes   []string  `json:"nodes"`
	At      time.Time `json:"at"`
	// Term is, for recover, the highest raft term the nodes reported right before it was sent:
	// a recover reported with a higher term landed.
	Term uint64 `json:"term,omitempty"`
}

// Silence is one Alertmanager silence action taken for the incident.
type Silence struct {
	ID     string    `json:"id"`
	Action string    `json:"action"` // created | extended | expired | failed | foreign
	At     time.Time `json:"at"`
	EndsAt time.Time `json:"ends_at,omitempty"`
	Error  string    `json:"error,omitempty"`
}

// Approval is a human decision: an approval of the recovery step, or an abort.
type Approval struct {
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Ack is a human's acknowledgement of the incident, "I am on it": by an Alertmanager silence
// whose comment says so (karma's ACK button, `amtool silence add --comment="ACK …"`) or through
// the API. The runbook goes on; an acknowledgement never approves anything.
type Ack struct {
	By        string    `json:"by"`
	At        time.Time `json:"at"`
	Comment   string    `json:"comment,omitempty"`
	Source    string    `json:"source"`               // "silence" or "api"
	SilenceID string    `json:"silence_id,omitempty"` // the acknowledging silence
}

// VerdictKind is the result of confirmation.
type VerdictKind string

const (
	VerdictConfirmed    VerdictKind = "confirmed"
	VerdictNotConfirmed VerdictKind = "not_confirmed"
	VerdictInconclusive VerdictKind = "inconclusive"
)

// Condition names the SOP condition a piece of evidence supports.
type Condition string

const (
	CondControl Condition = "control" // QUORUM_LOST somewhere, or more than one leader_id
	CondData    Condition = "data"    // a shard's applied index differs across nodes
	CondNetwork Condition = "network" // peer port unreachable and no firewall rule explains it
	CondClock   Condition = "clock"   // clock fuse input
	CondHealth  Condition = "health"  // liveness (HTTP/gRPC health, etcd, redis): context only
)

// Verdict is the decision plus everything it was decided from.
type Verdict struct {
	Kind       VerdictKind        `json:"kind"`
	Reason     string             `json:"reason"`
	Conditions map[Condition]bool `json:"conditions"`           // control, data, network: held or not
	RootCause  string             `json:"root_cause,omitempty"` // "network_partition" when partition_score > bound
	SOP        string             `json:"sop,omitempty"`        // e.g. "SOP-ZMY-003"
	// PartitionScore is the highest netcheck partition_score seen on any node.
	PartitionScore float64       `json:"partition_score"`
	ClockFuse      bool          `json:"clock_fuse_tripped"`
	Threshold      time.Duration `json:"threshold_ns"` // split-brain threshold used as probe budget
	At             time.Time     `json:"at"`
	Duration       time.Duration `json:"duration_ns"`
	// Healthy is true when every node answered, all report QUORUM_OK, exactly one leader_id is
	// reported, and every shard's applied index agrees within tolerance: the `verifying` check.
	Healthy bool `json:"healthy"`
	// Groups is the partition as the probes see it: node ids grouped by reachability.
	Groups   [][]string `json:"groups,omitempty"`
	Evidence []Evidence `json:"evidence"`
}

// Evidence is one probe result on one node (or on the cluster, Node == "").
type Evidence struct {
	Node     string        `json:"node,omitempty"`
	Probe    string        `json:"probe"` // control, raft_state, data, tcp, netcheck, http, grpc, redis, etcd, clock
	OK       bool          `json:"ok"`    // the probe ran and got an answer
	Value    string        `json:"value,omitempty"`
	Raw      string        `json:"raw,omitempty"` // capped excerpt of what was read
	Duration time.Duration `json:"duration_ns"`
	Error    string        `json:"error,omitempty"`
	Skipped  bool          `json:"skipped,omitempty"` // node breaker open: not probed
	Supports []Condition   `json:"supports,omitempty"`
}

// Gate is the recovery gate's reading (SOP-ZMY-005), approval aside.
type Gate struct {
	NetworkConverged bool    `json:"network_converged"` // max netcheck partition_score <= bound
	PartitionScore   float64 `json:"partition_score"`
	EtcdChecked      bool    `json:"etcd_checked"` // false when the cluster declares no etcd
	EtcdHealthy      bool    `json:"etcd_healthy"` // every endpoint healthy (true when not checked)
	// UnhealthyEtcd lists the endpoints that are not, with why ("http://…: status: no leader").
	UnhealthyEtcd []string   `json:"unhealthy_etcd_endpoints,omitempty"`
	Reason        string     `json:"reason,omitempty"` // what is still missing, one sentence
	At            time.Time  `json:"at"`
	Evidence      []Evidence `json:"evidence,omitempty"`
}

// GateStatus is the recovery gate as an operator reads it: what it still waits for, since when,
// until when, and the values it waits on.
type GateStatus struct {
	// WaitingFor lists what is missing: network, etcd, approval (empty when the gate opened).
	WaitingFor     []string  `json:"waiting_for"`
	Since          time.Time `json:"since"`    // the incident reached the gate
	Deadline       time.Time `json:"deadline"` // then needs_human
	CheckedAt      time.Time `json:"checked_at"`
	PartitionScore float64   `json:"partition_score"`
	UnhealthyEtcd  []string  `json:"unhealthy_etcd_endpoints,omitempty"`
	Reason         string    `json:"reason,omitempty"`
}

// Open reports whether every condition of the gate, approval aside, holds.
func (g Gate) Open() bool { return g.NetworkConverged && g.EtcdHealthy }
