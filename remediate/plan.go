package remediate

import (
	"context"
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

// PlanReport is GET /api/v1/clusters/{name}/plan: what the probes see now and what the runbook
// would run. Producing it mutates nothing.
type PlanReport struct {
	Cluster string            `json:"cluster"`
	Verdict *incident.Verdict `json:"verdict,omitempty"`
	Error   string            `json:"error,omitempty"` // the probes failed
	// Guard is the guard that would refuse now ("" when none would).
	Guard  string   `json:"guard,omitempty"`
	Reason string   `json:"reason,omitempty"`
	Steps  []string `json:"steps"`
}

// Plan probes the cluster now and returns a *PlanReport (any: the receiver's interface).
func (e *Engine) Plan(ctx context.Context, cluster string) (any, error) {
	cfg := e.config()
	cc := cfg.Cluster(cluster)
	if cc == nil {
		return nil, fmt.Errorf("plan %s: %w", cluster, incident.ErrUnknownCluster)
	}
	rep := &PlanReport{Cluster: cluster, Steps: e.PlanSteps(cfg, *cc)}
	v, err := e.p.Confirm(ctx, cluster)
	if err != nil {
		rep.Error = err.Error()
	}
	rep.Verdict = v
	bs, err := e.brk.State(ctx, cluster)
	if err != nil {
		return nil, err
	}
	cs, err := loadClusterState(ctx, e.j, cluster)
	if err != nil {
		return nil, err
	}
	in := guardInput{Now: e.now(), Cluster: cluster, Paused: cs.Paused, Breaker: bs,
		TotalClusters: len(cfg.Clusters), LastFinished: cs.LastRemediationAt,
		LastIncident: cs.LastRemediationIncident, DryRun: dryRun(cfg, cc), Cfg: cfg.Remediation,
		Remediating: map[string]string{}}
	e.mu.Lock()
	for id, r := range e.runners {
		if r.claimed {
			in.Remediating[id] = r.cluster
		}
	}
	e.mu.Unlock()
	if name, ref := runGuards(in); ref != nil {
		rep.Guard, rep.Reason = name, ref.Reason
	}
	return rep, nil
}

// PlanSteps lists what the runbook runs for the cluster, with the exact zmyctl argv per node.
func (e *Engine) PlanSteps(cfg *config.Config, cc config.ClusterConfig) []string {
	r := cfg.Remediation
	argv := func(n config.NodeConfig, args ...string) string {
		return strings.Join(append(renderArgv(cc, n), args...), " ")
	}
	steps := []string{}
	add := func(format string, a ...any) { steps = append(steps, fmt.Sprintf(format, a...)) }
	if cfg.Alertmanager.URL != "" {
		add("silence: one Alertmanager silence %s=%q, alertname=~%q for %s, extended every %s, expired at the end",
			"cluster", cc.Name, cfg.Alertmanager.AlertNameRegex, cfg.Alertmanager.SilenceDuration, cfg.Alertmanager.ExtendEvery)
	}
	add("contain: on all %d nodes in parallel, within the golden window of %s:", len(cc.Nodes), r.GoldenWindow)
	for _, n := range cc.Nodes {
		add("  %s: %s", n.ID, argv(n, "raft", "suspend", "--force"))
	}
	for _, n := range cc.Nodes {
		add("  verify %s: %s  (raft_state must be %q)", n.ID, argv(n, "raft", "state"), "suspended")
	}
	add("snapshot: on every node, tag chosen once per incident:")
	for _, n := range cc.Nodes {
		add("  %s: %s", n.ID, argv(n, "snapshot", "save", "--tag", "pre-recover-<unix>"))
	}
	gate := fmt.Sprintf("gate: network converged (partition_score <= %g), etcd endpoints healthy", r.ConvergedScore)
	if requireApproval(cfg, &cc) {
		gate += ", and a human approval (POST /api/v1/incidents/<id>/approve)"
	}
	add("%s; poll every %s, at most %s", gate, r.GatePoll, r.GateTimeout)
	if len(cc.Nodes) > 0 {
		add("arbitrate: re-check every node holds the snapshot, then %s  (must name one strict majority)",
			argv(cc.Nodes[0], "quorum", "recover", "--auto"))
	}
	add("resume: on every suspended node, only after recover succeeded:")
	for _, n := range cc.Nodes {
		add("  %s: %s", n.ID, argv(n, "raft", "resume"))
	}
	add("verify: probe until quorum up, one leader, shard indexes equal, at most %s", time.Duration(r.VerifyTimeout))
	return steps
}

// renderArgv renders the cluster's zmyctl argv template for a node, as the driver does (the
// driver keeps its renderer private); a template that does not render shows as written.
func renderArgv(cc config.ClusterConfig, n config.NodeConfig) []string {
	data := struct {
		Node    config.NodeConfig
		Cluster string
	}{n, cc.Name}
	out := make([]string, 0, len(cc.Zmyctl))
	for _, elem := range cc.Zmyctl {
		t, err := template.New("argv").Option("missingkey=error").Parse(elem)
		var b strings.Builder
		if err != nil || t.Execute(&b, data) != nil {
			out = append(out, elem)
			continue
		}
		out = append(out, b.String())
	}
	return out
}
