package remediate

import (
	"context"
	"fmt"

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

// Plan probes the cluster now and says what the runbook would do.
func (e *Engine) Plan(ctx context.Context, cluster string) (*PlanReport, error) {
	cfg := e.config()
	cc := cfg.Cluster(cluster)
	if cc == nil {
		return nil, fmt.Errorf("plan %s: %w", cluster, incident.ErrUnknownCluster)
	}
	rep := &PlanReport{Cluster: cluster, Steps: planSteps(cfg, cc)}
	v, err := e.p.Confirm(ctx, cluster)
	if err != nil {
		rep.Error = err.Error()
	}
	rep.Verdict = v
	in, err := readGuardInput(ctx, e, cfg, cc, e.now())
	if err != nil {
		return nil, err
	}
	if in.Remediating, err = (storeClaims{j: e.j}).current(ctx); err != nil {
		return nil, err
	}
	if name, ref := runGuards(in); ref != nil {
		rep.Guard, rep.Reason = name, ref.Reason
	}
	return rep, nil
}
