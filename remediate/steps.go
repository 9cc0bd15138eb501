package remediate

import (
	"fmt"
	"strings"
	"time"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

// stepSpec is one row of the runbook's step table: everything the engine, the guards, the API,
// the plan and the metrics know about a step. Nothing else encodes the order of the runbook:
// adding a step is one row here plus its stage.
type stepSpec struct {
	step  incident.Step
	stage StageFunc
	// next is entered when the stage is Done. The last step closes the incident itself.
	next incident.Step
	// budget is how long the step may take from when it was entered.
	budget func(cfg *config.Config, cc *config.ClusterConfig) time.Duration
	// guarded: the incident passed the guards, so it claims its cluster (blast radius and
	// anti-flap count it) and running out of time hands it to a human instead of closing it as
	// inconclusive.
	guarded bool
	// approvable: Approve is taken at this step, once the verdict is confirmed.
	approvable bool
	// mutation names what the stage sends to the nodes ("" when it mutates nothing); the
	// requirements are re-read before every execution of a mutating stage.
	mutation string
	// requires is what must hold before the stage may run; the first that does not ends the
	// step as that requirement says (requirements.go).
	requires []requirement
	// plan describes the step for the dry run and the incident's plan.
	plan func(p planCtx) []string
}

// runbook is the step table, in order.
var runbook = []stepSpec{
	{step: incident.StepReceived, stage: stageReceived, next: incident.StepConfirming,
		budget: commandBudget(2)},
	{step: incident.StepConfirming, stage: stageConfirming, next: incident.StepGuarding,
		budget: confirmingBudget},
	{step: incident.StepGuarding, stage: stageGuarding, next: incident.StepSilencing,
		budget: commandBudget(2), approvable: true},
	{step: incident.StepSilencing, stage: stageSilencing, next: incident.StepContaining,
		budget: silencingBudget, guarded: true, approvable: true, plan: planSilence},
	{step: incident.StepContaining, stage: stageContaining, next: incident.StepSnapshotting,
		budget: goldenWindow, guarded: true, approvable: true, mutation: "raft suspend", plan: planContain},
	{step: incident.StepSnapshotting, stage: stageSnapshotting, next: incident.StepAwaitingRecovery,
		budget: goldenWindow, guarded: true, approvable: true, mutation: "snapshot save",
		requires: []requirement{requireNoTakeover, requireSuspended}, plan: planSnapshot},
	{step: incident.StepAwaitingRecovery, stage: stageAwaitingRecovery, next: incident.StepArbitrating,
		budget: func(cfg *config.Config, _ *config.ClusterConfig) time.Duration {
			return time.Duration(cfg.Remediation.GateTimeout)
		}, guarded: true, approvable: true, plan: planGate},
	{step: incident.StepArbitrating, stage: stageArbitrating, next: incident.StepResuming,
		budget: commandBudget(3), guarded: true, mutation: "quorum recover",
		requires: []requirement{requireNoTakeover, requireSuspended, requireSnapshots}, plan: planArbitrate},
	{step: incident.StepResuming, stage: stageResuming, next: incident.StepVerifying,
		budget: goldenWindow, guarded: true, mutation: "raft resume",
		requires: []requirement{requireRecovered, requireNoTakeover}, plan: planResume},
	{step: incident.StepVerifying, stage: stageVerifying,
		budget: func(cfg *config.Config, _ *config.ClusterConfig) time.Duration {
			return time.Duration(cfg.Remediation.VerifyTimeout)
		}, guarded: true, plan: planVerify},
}

// stepIndex maps a step to its row in runbook.
var stepIndex = func() map[incident.Step]int {
	m := make(map[incident.Step]int, len(runbook))
	for i, s := range runbook {
		m[s.step] = i
	}
	return m
}()

// specOf returns the step's row; ok is false for closed or unknown steps.
func specOf(s incident.Step) (stepSpec, bool) {
	i, ok := stepIndex[s]
	if !ok {
		return stepSpec{}, false
	}
	return runbook[i], true
}

// stepNames lists every step, the table's and closed: metrics pre-create their labels from it.
func stepNames() []incident.Step {
	out := make([]incident.Step, 0, len(runbook)+1)
	for _, s := range runbook {
		out = append(out, s.step)
	}
	return append(out, incident.StepClosed)
}

// pastGuards reports whether an incident at step has passed the guards (and not closed).
func pastGuards(s incident.Step) bool {
	spec, ok := specOf(s)
	return ok && spec.guarded
}

// stepBudget is how long the step may take from when it was entered; every step has one.
func stepBudget(s incident.Step, cfg *config.Config, cc *config.ClusterConfig) time.Duration {
	spec, ok := specOf(s)
	if !ok {
		return 0
	}
	return spec.budget(cfg, cc)
}

func goldenWindow(cfg *config.Config, _ *config.ClusterConfig) time.Duration {
	return time.Duration(cfg.Remediation.GoldenWindow)
}

// confirmingBudget is the confirm window, and a golden window for the verdict that ends it.
func confirmingBudget(cfg *config.Config, cc *config.ClusterConfig) time.Duration {
	return time.Duration(cfg.Detection.ConfirmWindow) + goldenWindow(cfg, cc)
}

// commandBudget is n command timeouts: steps whose work is a few commands in a row.
func commandBudget(n int) func(*config.Config, *config.ClusterConfig) time.Duration {
	return func(cfg *config.Config, cc *config.ClusterConfig) time.Duration {
		return time.Duration(n) * cfg.CommandTimeout(cc)
	}
}

// silencingBudget: its Alertmanager calls are bounded by alertmanager.timeout, not by the
// command timeout.
func silencingBudget(cfg *config.Config, cc *config.ClusterConfig) time.Duration {
	return max(commandBudget(2)(cfg, cc), 3*time.Duration(cfg.Alertmanager.Timeout))
}

// planCtx is what a step's plan is written from.
type planCtx struct {
	cfg *config.Config
	cc  *config.ClusterConfig
	// argv renders the exact zmyctl command line for a node.
	argv func(n config.NodeConfig, args ...string) string
}

// planSteps lists what the runbook runs for the cluster, step by step, with the exact zmyctl
// argv per node.
func planSteps(cfg *config.Config, cc *config.ClusterConfig) []string {
	p := planCtx{cfg: cfg, cc: cc, argv: func(n config.NodeConfig, args ...string) string {
		argv, err := cc.Argv(n)
		if err != nil {
			argv = cc.Zmyctl // a template that does not render shows as written
		}
		return strings.Join(append(argv, args...), " ")
	}}
	steps := []string{}
	for _, s := range runbook {
		if s.plan != nil {
			steps = append(steps, s.plan(p)...)
		}
	}
	return steps
}

func planSilence(p planCtx) []string {
	am := p.cfg.Alertmanager
	if am.URL == "" {
		return nil
	}
	return []string{fmt.Sprintf("silence: one Alertmanager silence %s=%q, alertname=~%q for %s, extended every %s; "+
		"expired when a human is needed, ends %s after recovered",
		"cluster", p.cc.Name, am.AlertNameRegex, am.SilenceDuration, am.ExtendEvery, am.RecoveredGrace)}
}

func planContain(p planCtx) []string {
	out := []string{fmt.Sprintf("contain: on all %d nodes in parallel, within the golden window of %s:",
		len(p.cc.Nodes), p.cfg.Remediation.GoldenWindow)}
	for _, n := range p.cc.Nodes {
		out = append(out, fmt.Sprintf("  %s: %s", n.ID, p.argv(n, "raft", "suspend", "--force")))
	}
	for _, n := range p.cc.Nodes {
		out = append(out, fmt.Sprintf("  verify %s: %s  (raft_state must be %q)", n.ID, p.argv(n, "raft", "state"), "suspended"))
	}
	return out
}

func planSnapshot(p planCtx) []string {
	out := []string{"snapshot: on every node, tag chosen once per incident:"}
	for _, n := range p.cc.Nodes {
		out = append(out, fmt.Sprintf("  %s: %s", n.ID, p.argv(n, "snapshot", "save", "--tag", "pre-recover-<unix>")))
	}
	return out
}

func planGate(p planCtx) []string {
	r := p.cfg.Remediation
	gate := fmt.Sprintf("gate: network converged (partition_score <= %g), etcd endpoints healthy", r.ConvergedScore)
	if requireApproval(p.cfg, p.cc) {
		gate += ", and a human approval (POST /api/v1/incidents/<id>/approve)"
	}
	return []string{fmt.Sprintf("%s; poll every %s, at most %s", gate, r.GatePoll, r.GateTimeout)}
}

func planArbitrate(p planCtx) []string {
	if len(p.cc.Nodes) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("arbitrate: re-check every node holds the snapshot, then %s  (must name one strict majority)",
		p.argv(p.cc.Nodes[0], "quorum", "recover", "--auto"))}
}

func planResume(p planCtx) []string {
	out := []string{"resume: on every suspended node, only after recover succeeded:"}
	for _, n := range p.cc.Nodes {
		out = append(out, fmt.Sprintf("  %s: %s", n.ID, p.argv(n, "raft", "resume")))
	}
	return out
}

func planVerify(p planCtx) []string {
	return []string{fmt.Sprintf("verify: probe until quorum up, one leader, shard indexes equal, at most %s",
		time.Duration(p.cfg.Remediation.VerifyTimeout))}
}
