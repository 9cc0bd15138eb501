package zmy

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zmyorg/zmy-responder/internal/config"
)

// NodeDriver is everything the responder does to the nodes of one cluster. *Driver (zmyctl)
// and *APIDriver (the nodes' admin API) implement it. Detection and remediation each declare the part they use (detection's is
// read-only); this is the type the factory returns, so both get the same driver.
type NodeDriver interface {
	Status(ctx context.Context, node config.NodeConfig) (*QuorumStatus, *Result, error)
	RaftState(ctx context.Context, node config.NodeConfig) (*RaftState, *Result, error)
	Netcheck(ctx context.Context, node config.NodeConfig) (*Netcheck, *Result, error)
	Suspend(ctx context.Context, node config.NodeConfig) (*RaftState, *Result, error)
	Resume(ctx context.Context, node config.NodeConfig) (*RaftState, *Result, error)
	SnapshotSave(ctx context.Context, node config.NodeConfig, tag string) (*Snapshot, *Result, error)
	SnapshotList(ctx context.Context, node config.NodeConfig) ([]Snapshot, *Result, error)
	Recover(ctx context.Context, node config.NodeConfig) (*RecoverResult, *Result, error)
}

var (
	_ NodeDriver = (*Driver)(nil)
	_ NodeDriver = (*APIDriver)(nil)
)

// ForCluster builds the node driver of one cluster: the one factory detection and remediation
// both use, so that they run the same commands with the same timeout (the cluster's
// command_timeout, else remediation.command_timeout). The cluster's driver key chooses
// between zmyctl (the default) and the admin API.
func ForCluster(cfg *config.Config, cc config.ClusterConfig, reg prometheus.Registerer) (NodeDriver, error) {
	opts := DriverOptions{Timeout: cfg.CommandTimeout(&cc), Registerer: reg}
	if cc.Driver == config.DriverAPI {
		return NewAPIDriver(cc, opts)
	}
	return NewDriver(cc, opts)
}
