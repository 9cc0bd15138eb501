package remediate

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// Nodes is what the runbook does to a cluster's nodes; zmy.ForCluster's driver implements it.
// Every call returns the raw run (kept as evidence; nil if nothing ran) beside the parsed
// answer.
type Nodes interface {
	Suspend(ctx context.Context, node config.NodeConfig) (*zmy.RaftState, *zmy.Result, error)
	Resume(ctx context.Context, node config.NodeConfig) (*zmy.RaftState, *zmy.Result, error)
	RaftState(ctx context.Context, node config.NodeConfig) (*zmy.RaftState, *zmy.Result, error)
	SnapshotSave(ctx context.Context, node config.NodeConfig, tag string) (*zmy.Snapshot, *zmy.Result, error)
	SnapshotList(ctx context.Context, node config.NodeConfig) ([]zmy.Snapshot, *zmy.Result, error)
	Recover(ctx context.Context, node config.NodeConfig) (*zmy.RecoverResult, *zmy.Result, error)
}

// maxOutput is how much of a command's output the incident record keeps.
const maxOutput = 2048

// record keeps one node command as evidence of the incident.
func (sc *stageCtx) record(res *zmy.Result, err error) {
	if res == nil {
		return
	}
	out := strings.TrimSpace(res.Stdout)
	if s := strings.TrimSpace(res.Stderr); s != "" {
		out = strings.TrimSpace(out + "\n" + s)
	}
	if len(out) > maxOutput {
		out = out[:maxOutput] + "…"
	}
	c := incident.Command{Node: res.Node, Args: res.Args, Step: sc.inc.Step, Started: res.Started,
		Duration: res.Duration, Exit: res.Exit, Output: out}
	if err != nil {
		c.Error = err.Error()
	}
	sc.mu.Lock()
	sc.cmds = append(sc.cmds, c)
	sc.mu.Unlock()
}

// nodeConfigs returns the configured nodes with the given ids (all of them when ids is nil).
func (sc *stageCtx) nodeConfigs(ids []string) []config.NodeConfig {
	if ids == nil {
		return sc.cluster.Nodes
	}
	var out []config.NodeConfig
	for _, n := range sc.cluster.Nodes {
		if slices.Contains(ids, n.ID) {
			out = append(out, n)
		}
	}
	return out
}

func (sc *stageCtx) nodeIDs() []string {
	ids := make([]string, len(sc.cluster.Nodes))
	for i, n := range sc.cluster.Nodes {
		ids[i] = n.ID
	}
	return ids
}

// each runs fn on every node in parallel, each call holding a slot of the engine's priority
// semaphore, and returns the errors by node.
func (sc *stageCtx) each(ctx context.Context, nodes []config.NodeConfig, p priority,
	fn func(ctx context.Context, n config.NodeConfig) error) map[string]error {
	var mu sync.Mutex
	errs := map[string]error{}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			err := sc.slots.Acquire(ctx, p)
			if err == nil {
				err = fn(ctx, n)
				sc.slots.Release()
			}
			if err != nil {
				mu.Lock()
				errs[n.ID] = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errs
}

// raftStates asks every node for its raft state; unknown states are absent from the map.
func (sc *stageCtx) raftStates(ctx context.Context, nodes []config.NodeConfig, p priority) (map[string]string, map[string]error) {
	full, errs := sc.readStates(ctx, nodes, p)
	return roles(full), errs
}

// readStates asks every node for its whole raft state (who suspended it, the last recover).
func (sc *stageCtx) readStates(ctx context.Context, nodes []config.NodeConfig, p priority) (map[string]zmy.RaftState, map[string]error) {
	return readEach(ctx, sc, nodes, p, func(ctx context.Context, n config.NodeConfig) (zmy.RaftState, *zmy.Result, error) {
		st, res, err := sc.driver.RaftState(ctx, n)
		if err != nil {
			return zmy.RaftState{}, res, err
		}
		return *st, res, nil
	})
}

// roles keeps the raft_state of each answer.
func roles(states map[string]zmy.RaftState) map[string]string {
	out := make(map[string]string, len(states))
	for id, st := range states {
		out[id] = st.RaftState
	}
	return out
}

// snapshotLists reads every node's snapshots.
func (sc *stageCtx) snapshotLists(ctx context.Context, nodes []config.NodeConfig, p priority) (map[string][]zmy.Snapshot, map[string]error) {
	return readEach(ctx, sc, nodes, p, sc.driver.SnapshotList)
}

// readEach runs a read command on every node (as each does), records every run, and returns
// the answers of the nodes that gave one, and the errors of the others.
func readEach[T any](ctx context.Context, sc *stageCtx, nodes []config.NodeConfig, p priority,
	read func(context.Context, config.NodeConfig) (T, *zmy.Result, error)) (map[string]T, map[string]error) {
	var mu sync.Mutex
	out := map[string]T{}
	errs := sc.each(ctx, nodes, p, func(ctx context.Context, n config.NodeConfig) error {
		v, res, err := read(ctx, n)
		sc.record(res, err)
		if err != nil {
			return err
		}
		mu.Lock()
		out[n.ID] = v
		mu.Unlock()
		return nil
	})
	return out, errs
}

// describe lists nodes with their errors, in node order, for reasons and notes.
func describe(ids []string, errs map[string]error) string {
	parts := make([]string, 0, len(ids))
	for _, id := range ids {
		if err := errs[id]; err != nil {
			parts = append(parts, fmt.Sprintf("%s (%v)", id, err))
		} else {
			parts = append(parts, id)
		}
	}
	return strings.Join(parts, ", ")
}

// actingNodes sends a command only while this replica may act on the cluster: a leader whose
// lease may have expired (no keepalive answered for TTL minus a margin: a frozen host, a lost
// network) stops commanding at once, before another replica can lead. A command it sends is
// cut off when the leadership may lapse (Fence.Until), so that none started just before the cut
// still runs (a second recover's window) when another replica leads.
type actingNodes struct {
	Nodes
	acting func() (incident.Fence, error)
}

// guard asks the leadership before sending command to n and bounds ctx by its validity.
func (a actingNodes) guard(ctx context.Context, command string, n config.NodeConfig) (context.Context, context.CancelFunc, error) {
	f, err := a.acting()
	if err != nil {
		return nil, nil, notSent(command, n, err)
	}
	if f.Until.IsZero() {
		return ctx, func() {}, nil
	}
	ctx, cancel := context.WithDeadline(ctx, f.Until)
	return ctx, cancel, nil
}

func (a actingNodes) Suspend(ctx context.Context, n config.NodeConfig) (*zmy.RaftState, *zmy.Result, error) {
	ctx, cancel, err := a.guard(ctx, zmy.CmdSuspend, n)
	if err != nil {
		return nil, nil, err
	}
	defer cancel()
	return a.Nodes.Suspend(ctx, n)
}

func (a actingNodes) Resume(ctx context.Context, n config.NodeConfig) (*zmy.RaftState, *zmy.Result, error) {
	ctx, cancel, err := a.guard(ctx, zmy.CmdResume, n)
	if err != nil {
		return nil, nil, err
	}
	defer cancel()
	return a.Nodes.Resume(ctx, n)
}

func (a actingNodes) RaftState(ctx context.Context, n config.NodeConfig) (*zmy.RaftState, *zmy.Result, error) {
	ctx, cancel, err := a.guard(ctx, zmy.CmdRaftState, n)
	if err != nil {
		return nil, nil, err
	}
	defer cancel()
	return a.Nodes.RaftState(ctx, n)
}

func (a actingNodes) SnapshotSave(ctx context.Context, n config.NodeConfig, tag string) (*zmy.Snapshot, *zmy.Result, error) {
	ctx, cancel, err := a.guard(ctx, zmy.CmdSnapshotSave, n)
	if err != nil {
		return nil, nil, err
	}
	defer cancel()
	return a.Nodes.SnapshotSave(ctx, n, tag)
}

func (a actingNodes) SnapshotList(ctx context.Context, n config.NodeConfig) ([]zmy.Snapshot, *zmy.Result, error) {
	ctx, cancel, err := a.guard(ctx, zmy.CmdSnapshotList, n)
	if err != nil {
		return nil, nil, err
	}
	defer cancel()
	return a.Nodes.SnapshotList(ctx, n)
}

func (a actingNodes) Recover(ctx context.Context, n config.NodeConfig) (*zmy.RecoverResult, *zmy.Result, error) {
	ctx, cancel, err := a.guard(ctx, zmy.CmdRecover, n)
	if err != nil {
		return nil, nil, err
	}
	defer cancel()
	return a.Nodes.Recover(ctx, n)
}

func notSent(command string, n config.NodeConfig, err error) error {
	return &zmy.CommandError{Command: command, Node: n.ID, Err: fmt.Errorf("not sent: %w", err)}
}
