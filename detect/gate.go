package detect

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// RecoveryGate reads the SOP-ZMY-005 gate now: the network converged (every node's netcheck
// answers with partition_score at or below remediation.converged_partition_score) and, when the
// cluster declares etcd, every endpoint healthy with every node's lease key present. Approval is
// remediate's business. Like Confirm it runs within the threshold budget and mutates nothing.
func (p *Prober) RecoveryGate(ctx context.Context, cluster string) (incident.Gate, error) {
	cfg, cs, err := p.state(cluster)
	if err != nil {
		return incident.Gate{}, fmt.Errorf("recovery gate: %w", err)
	}
	at := p.now()
	bctx, cancel := budgetContext(ctx, p.currentThreshold(cs, cfg))
	defer cancel()
	results := p.fanOut(bctx, cs, cfg, []string{ProbeNetcheck}, nodesOnly)
	if cs.cfg.Etcd != nil {
		pctx, cancel := probeContext(bctx, cfg)
		r := run(pctx, ProbeEtcd, Target{Cluster: &cs.cfg})
		cancel()
		p.metrics.observe(r)
		results = append(results, r)
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return incident.Gate{}, fmt.Errorf("recovery gate %s: %w", cluster, ctx.Err())
	}
	g := gate(results, nodeIDs(cs.cfg), cs.cfg.Etcd != nil, cfg.Remediation.ConvergedScore)
	g.At = at
	p.metrics.partition.set(cluster, g.PartitionScore, at, results)
	p.log.Info("recovery gate", "cluster", cluster, "open", g.Open(), "reason", g.Reason)
	return g, nil
}

// gate is the pure reading of the gate's probe results.
func gate(results []Result, nodes []string, etcdDeclared bool, converged float64) incident.Gate {
	ev := index(results)
	g := incident.Gate{NetworkConverged: true, EtcdHealthy: true, EtcdChecked: etcdDeclared}
	var why, silent, split []string
	for _, n := range nodes {
		nc, ok := data[zmy.Netcheck](ev, n, ProbeNetcheck)
		if !ok {
			silent = append(silent, n)
			continue
		}
		g.PartitionScore = max(g.PartitionScore, nc.PartitionScore)
		if nc.PartitionScore > converged {
			split = append(split, fmt.Sprintf("%s=%.2f", n, nc.PartitionScore))
		}
	}
	if len(silent) > 0 {
		g.NetworkConverged = false
		why = append(why, "netcheck did not answer on "+list(silent))
	}
	if len(split) > 0 {
		g.NetworkConverged = false
		why = append(why, fmt.Sprintf("network not converged: partition_score %s above %.2f", list(split), converged))
	}
	if etcdDeclared {
		var er *EtcdReading
		for _, r := range ev.cluster {
			if d, ok := r.Data.(*EtcdReading); ok && r.Probe == ProbeEtcd {
				er = d
			}
		}
		switch {
		case er == nil:
			g.EtcdHealthy = false
			why = append(why, "etcd not checked: "+etcdReason(ev.cluster))
		case !er.Healthy():
			g.EtcdHealthy = false
			why = append(why, "etcd: "+etcdReason(ev.cluster))
			for _, h := range er.Endpoints {
				if !h.Healthy {
					g.UnhealthyEtcd = append(g.UnhealthyEtcd, h.Endpoint+": "+h.Error)
				}
			}
		}
	}
	g.Reason = strings.Join(why, "; ")
	g.Evidence = evidence(results, FuseState{}, decideParams{Nodes: nodes}, nil)
	return g
}

func etcdReason(rs []Result) string {
	for _, r := range rs {
		if r.Probe == ProbeEtcd && r.Reason != "" {
			return r.Reason
		}
	}
	return "no answer"
}

// Compile-time check that the read-only driver interface is what zmy.Driver offers.
var _ Zmyctl = (*zmy.Driver)(nil)
