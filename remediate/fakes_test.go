package remediate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// fakeNodes is a node set held in memory for the stages' unit tests, where a simulator process
// adds nothing: suspend and resume are idempotent, snapshots are kept per tag, recover answers
// the configured majority. Every call is recorded. The SOP's behaviour (writes, divergence,
// invariants) is the simulator's job, in the tests that start one.
type fakeNodes struct {
	mu    sync.Mutex
	nodes map[string]*fakeNode
	calls []fakeCall
	// majority is what recover names; empty: "no unique majority".
	majority []string
	// hang makes every call to the node block until its context ends; fail makes it fail.
	hang map[string]bool
	fail map[string]error
	// recoverFail makes recover on the node fail with the error (its other commands work);
	// readFail does the same for raft state.
	recoverFail, readFail map[string]error
	// last is the cluster's last recover, as every node reports it (nil: never, or the nodes
	// do not report it when hideLast is set).
	last     *zmy.LastRecover
	hideLast bool
	// afterSuspend, when set, runs after each suspend landed (an outsider's hand).
	afterSuspend func(f *fakeNodes, node string)
}

type fakeNode struct {
	raft        string // leader, follower, suspended
	suspendedBy string
	term        uint64
	snapshots   []string
	recovers    int
}

type fakeCall struct{ node, command string }

func newFakeNodes(ids ...string) *fakeNodes {
	f := &fakeNodes{nodes: map[string]*fakeNode{}, hang: map[string]bool{}, fail: map[string]error{}}
	for i, id := range ids {
		st := "follower"
		if i == 0 {
			st = "leader"
		}
		f.nodes[id] = &fakeNode{raft: st, term: 3}
	}
	return f
}

// do records the call and applies fn to the node unless the node hangs or fails.
func (f *fakeNodes) do(ctx context.Context, node config.NodeConfig, command string, fn func(*fakeNode)) (*zmy.Result, error) {
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{node.ID, command})
	hang, fail := f.hang[node.ID], f.fail[node.ID]
	n := f.nodes[node.ID]
	f.mu.Unlock()
	res := &zmy.Result{Node: node.ID, Command: command, Args: []string{"zmyctl", command}, Started: time.Now()}
	switch {
	case hang:
		<-ctx.Done()
		return res, &zmy.CommandError{Command: command, Node: node.ID, Kind: zmy.ErrTimeout, Err: ctx.Err()}
	case fail != nil:
		return res, &zmy.CommandError{Command: command, Node: node.ID, Kind: fail, Err: fail}
	case n == nil:
		return res, &zmy.CommandError{Command: command, Node: node.ID, Kind: zmy.ErrUnreachable, Err: errors.New("no such node")}
	}
	f.mu.Lock()
	fn(n)
	f.mu.Unlock()
	return res, nil
}

func (f *fakeNodes) state(id string) *zmy.RaftState {
	n := f.nodes[id]
	st := &zmy.RaftState{Node: id, RaftState: n.raft, Term: n.term}
	if n.raft == zmy.StateSuspended {
		st.SuspendedBy = n.suspendedBy
	}
	if !f.hideLast {
		st.LastRecover = f.last
	}
	return st
}

func (f *fakeNodes) Suspend(ctx context.Context, n config.NodeConfig) (*zmy.RaftState, *zmy.Result, error) {
	res, err := f.do(ctx, n, zmy.CmdSuspend, func(fn *fakeNode) {
		if fn.raft != zmy.StateSuspended {
			fn.suspendedBy = zmy.ActorFrom(ctx)
		}
		fn.raft = zmy.StateSuspended
	})
	if err != nil {
		return nil, res, err
	}
	if f.afterSuspend != nil {
		f.afterSuspend(f, n.ID)
	}
	return f.read(n.ID), res, nil
}

func (f *fakeNodes) Resume(ctx context.Context, n config.NodeConfig) (*zmy.RaftState, *zmy.Result, error) {
	res, err := f.do(ctx, n, zmy.CmdResume, func(fn *fakeNode) { fn.raft = "follower" })
	if err != nil {
		return nil, res, err
	}
	return f.read(n.ID), res, nil
}

func (f *fakeNodes) RaftState(ctx context.Context, n config.NodeConfig) (*zmy.RaftState, *zmy.Result, error) {
	if err := f.readFail[n.ID]; err != nil {
		res, _ := f.do(ctx, n, zmy.CmdRaftState, func(*fakeNode) {})
		return nil, res, &zmy.CommandError{Command: zmy.CmdRaftState, Node: n.ID, Kind: err, Err: err}
	}
	res, err := f.do(ctx, n, zmy.CmdRaftState, func(*fakeNode) {})
	if err != nil {
		return nil, res, err
	}
	return f.read(n.ID), res, nil
}

func (f *fakeNodes) read(id string) *zmy.RaftState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state(id)
}

func (f *fakeNodes) SnapshotSave(ctx context.Context, n config.NodeConfig, tag string) (*zmy.Snapshot, *zmy.Result, error) {
	res, err := f.do(ctx, n, zmy.CmdSnapshotSave, func(fn *fakeNode) {
		if !slices.Contains(fn.snapshots, tag) {
			fn.snapshots = append(fn.snapshots, tag)
		}
	})
	if err != nil {
		return nil, res, err
	}
	return &zmy.Snapshot{Node: n.ID, Tag: tag}, res, nil
}

func (f *fakeNodes) SnapshotList(ctx context.Context, n config.NodeConfig) ([]zmy.Snapshot, *zmy.Result, error) {
	var out []zmy.Snapshot
	res, err := f.do(ctx, n, zmy.CmdSnapshotList, func(fn *fakeNode) {
		for _, tag := range fn.snapshots {
			out = append(out, zmy.Snapshot{Node: n.ID, Tag: tag})
		}
	})
	return out, res, err
}

func (f *fakeNodes) Recover(ctx context.Context, n config.NodeConfig) (*zmy.RecoverResult, *zmy.Result, error) {
	if err := f.recoverFail[n.ID]; err != nil {
		res, _ := f.do(ctx, n, zmy.CmdRecover, func(*fakeNode) {})
		return nil, res, &zmy.CommandError{Command: zmy.CmdRecover, Node: n.ID, Kind: err, Err: err}
	}
	res, err := f.do(ctx, n, zmy.CmdRecover, func(fn *fakeNode) { fn.recovers++ })
	if err != nil {
		return nil, res, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.majority) == 0 {
		return nil, res, &zmy.CommandError{Command: zmy.CmdRecover, Node: n.ID, Kind: zmy.ErrNoUniqueMajority,
			Err: zmy.ErrNoUniqueMajority}
	}
	var term uint64
	for _, fn := range f.nodes {
		term = max(term, fn.term)
	}
	term++
	for _, fn := range f.nodes {
		fn.term = term
	}
	rr := zmy.RecoverResult{Majority: f.majority, Leader: f.majority[0], Term: term, Discarded: 31}
	f.last = &zmy.LastRecover{RecoverResult: rr, At: time.Now(), Actor: zmy.ActorFrom(ctx)}
	return &rr, res, nil
}

// count is how many times command was sent (to node, or to any node when node is "").
func (f *fakeNodes) count(command, node string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c.command == command && (node == "" || c.node == node) {
			n++
		}
	}
	return n
}

// setAll puts every node in raft state st, suspended by the stage rig's runbook when st is
// suspended, with the given snapshots.
func (f *fakeNodes) setAll(st string, snapshots ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.nodes {
		n.raft, n.snapshots = st, slices.Clone(snapshots)
		if st == zmy.StateSuspended {
			n.suspendedBy = rigActor.String()
		}
	}
}

// fakeJournal holds one incident in memory: the stages' writes inside a step (intents, the
// snapshot tag) land here.
type fakeJournal struct {
	mu  sync.Mutex
	inc incident.Incident
}

func (j *fakeJournal) Update(_ context.Context, id string, fn func(*incident.Incident) error) (*incident.Incident, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if id != j.inc.ID {
		return nil, incident.ErrNotFound
	}
	cur := j.inc
	cur.Intents = slices.Clone(j.inc.Intents)
	if err := fn(&cur); err != nil {
		return nil, err
	}
	j.inc = cur
	out := cur
	return &out, nil
}

// fakeGuards is the durable state the guards read, and the claims of other incidents.
type fakeGuards struct {
	breaker BreakerState
	cluster clusterState
	others  map[string]string
	claimed bool
}

func (g *fakeGuards) breakerState(context.Context, string) (BreakerState, error) {
	return g.breaker, nil
}
func (g *fakeGuards) clusterState(context.Context, string) (clusterState, error) {
	return g.cluster, nil
}
func (g *fakeGuards) claim(_ context.Context, _, _ string, decide func(map[string]string) (string, *refusal)) (string, *refusal, error) {
	name, ref := decide(g.others)
	g.claimed = ref == nil
	return name, ref, nil
}

// fakeHumans says a human took over when takeover is set.
type fakeHumans struct{ takeover string }

func (h fakeHumans) takenOver(context.Context, *incident.Incident) string { return h.takeover }
func (h fakeHumans) silence(context.Context, *incident.Incident) error    { return nil }

// rigActor is who the stage rig's runbook is on the nodes.
var rigActor = zmy.Actor{Replica: "r1", Incident: "inc-000001", Token: "jtest"}

// stageRig runs one stage of the step table on fakes, with its requirements, as execStep does.
type stageRig struct {
	nodes   *fakeNodes
	journal *fakeJournal
	guards  *fakeGuards
	cfg     *config.Config
	humans  humans
	prober  Prober
}

func newStageRig(ids ...string) *stageRig {
	cfg := config.Default()
	cc := config.ClusterConfig{Name: "c1", Zmyctl: []string{"zmyctl", "--endpoint", "{{.Node.Admin}}"}}
	for _, id := range ids {
		cc.Nodes = append(cc.Nodes, config.NodeConfig{ID: id, Admin: id + ":9000"})
	}
	cfg.Clusters = []config.ClusterConfig{cc}
	return &stageRig{nodes: newFakeNodes(ids...), journal: &fakeJournal{}, guards: &fakeGuards{}, cfg: cfg}
}

// run executes the stage of inc's step within budget and returns its result.
func (r *stageRig) run(t *testing.T, inc incident.Incident, budget time.Duration) Result {
	t.Helper()
	if inc.ID == "" {
		inc.ID = "inc-000001"
	}
	if inc.Cluster == "" {
		inc.Cluster = "c1"
	}
	if inc.StepEnteredAt.IsZero() {
		inc.StepEnteredAt = time.Now().Add(-time.Millisecond)
	}
	r.journal.mu.Lock()
	r.journal.inc = inc
	r.journal.inc.Intents = slices.Clone(inc.Intents)
	r.journal.mu.Unlock()
	spec, ok := specOf(inc.Step)
	require.True(t, ok, "step %s in the table", inc.Step)
	deadline := time.Now().Add(budget)
	ctx, cancel := context.WithDeadline(t.Context(), deadline)
	defer cancel()
	ctx = zmy.WithActor(ctx, rigActor.String())
	sc := &stageCtx{inc: &inc, cfg: r.cfg, cluster: &r.cfg.Clusters[0], deadline: deadline, self: rigActor, deps: deps{
		driver: r.nodes, prober: r.prober, journal: r.journal, now: time.Now, slots: newPrioSemaphore(64),
		humans: r.humans, claims: r.guards, guards: r.guards, plan: func() []string { return []string{"plan"} },
	}}
	res, held := sc.require(ctx, spec)
	if held {
		res = spec.stage(ctx, sc)
	}
	return settle(res, "", ctx.Err(), &inc)
}

// applied returns the incident as the result's record would journal it.
func applied(inc incident.Incident, res Result) incident.Incident {
	if res.record != nil {
		res.record(&inc)
	}
	return inc
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("n%d", i+1)
	}
	return out
}

// slowGate is a recovery gate whose reading arrives after the caller's deadline (an etcd that
// does not answer), still saying what it found.
type slowGate struct{ reading incident.Gate }

func (slowGate) Confirm(context.Context, string) (*incident.Verdict, error) {
	return nil, errors.New("unused")
}
func (g slowGate) RecoveryGate(ctx context.Context, _ string) (incident.Gate, error) {
	<-ctx.Done()
	return g.reading, nil
}
