package detect

import (
	"context"
	"fmt"
)

// ProbeNetworkCheck runs `zmyctl debug netcheck --full` on the node: per-peer reachability, RTT,
// firewall blocks, and the node's partition_score.
func ProbeNetworkCheck(ctx context.Context, t Target) Result {
	nc, res, err := t.Zmyctl.Netcheck(ctx, t.Node)
	if err != nil {
		return zmyctlError(res, err)
	}
	var unreachable, blocked []string
	for _, p := range nc.Peers {
		if !p.Reachable {
			unreachable = append(unreachable, p.Peer)
		}
		if p.FirewallBlocked {
			blocked = append(blocked, p.Peer)
		}
	}
	r := Result{Status: StatusOK, Raw: stdout(res), Data: nc,
		Value: fmt.Sprintf("partition_score=%.2f reachable=%d/%d", nc.PartitionScore,
			len(nc.Peers)-len(unreachable), len(nc.Peers))}
	if len(blocked) > 0 {
		r.Value += "; firewall blocks peer port to " + list(blocked)
	}
	if len(unreachable) > 0 {
		r.Status, r.Reason = StatusFail, "peers unreachable: "+list(unreachable)
	}
	return r
}
