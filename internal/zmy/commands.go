package zmy

import (
	"context"
	"fmt"

	"github.com/zmyorg/zmy-responder/internal/config"
)

// The typed commands. Each sends one zmyctl command through the driver's transport (a zmyctl
// process, or the node's admin API), asking for `-o json` unless TextOutput, parses whichever
// form came back, and returns the parsed value with the raw Result for evidence. A parse failure
// is a *CommandError wrapping ErrMalformed, counted as result="error"; so is output cut at
// MaxOutput, which would otherwise parse as something it is not.

// transport sends one command to one node: zmyctl args in, the node's answer out. Errors are
// *CommandError; the Result is nil only when nothing was sent.
type transport interface {
	exec(ctx context.Context, node config.NodeConfig, command string, args []string) (*Result, error)
}

// commands are what both drivers share over their transport: the typed commands, their parsing,
// and the metrics.
type commands struct {
	transport  transport
	metrics    *driverMetrics
	maxOutput  int64
	textOutput bool
}

// newCommands is what both drivers' constructors share: the typed commands over t, their
// output cap, and the driver metrics registered with opts.Registerer.
func newCommands(t transport, cluster string, opts DriverOptions, textOutput bool) (commands, error) {
	m, err := newDriverMetrics(opts.Registerer)
	if err != nil {
		return commands{}, fmt.Errorf("cluster %q: register driver metrics: %w", cluster, err)
	}
	return commands{transport: t, metrics: m, maxOutput: opts.maxOutput(), textOutput: textOutput}, nil
}

// Run sends the command args to node: raw, no output parsing. A non-zero exit (an error answer),
// a timeout or a failure to send returns a *CommandError together with the Result (nil only if
// nothing was sent). The call ends at the earlier of ctx's deadline and the driver's Timeout.
func (d *commands) Run(ctx context.Context, node config.NodeConfig, args ...string) (*Result, error) {
	command := commandName(args)
	res, err := d.transport.exec(ctx, node, command, args)
	d.metrics.observe(command, res, err)
	return res, err
}

// Status runs `status --quorum`.
func (d *commands) Status(ctx context.Context, node config.NodeConfig) (*QuorumStatus, *Result, error) {
	s, res, err := typed(ctx, d, node, CmdStatus, ParseStatus, "status", "--quorum")
	if s != nil && s.Node == "" {
		s.Node = node.ID
	}
	return s, res, err
}

// RaftState runs `raft state`.
func (d *commands) RaftState(ctx context.Context, node config.NodeConfig) (*RaftState, *Result, error) {
	return raftTyped(ctx, d, node, CmdRaftState, "raft", "state")
}

// Suspend runs `raft suspend --force` (idempotent). The returned state is what the node says
// after the call; callers still verify with RaftState, as the SOP does.
func (d *commands) Suspend(ctx context.Context, node config.NodeConfig) (*RaftState, *Result, error) {
	return raftTyped(ctx, d, node, CmdSuspend, "raft", "suspend", "--force")
}

// Resume runs `raft resume` (idempotent).
func (d *commands) Resume(ctx context.Context, node config.NodeConfig) (*RaftState, *Result, error) {
	return raftTyped(ctx, d, node, CmdResume, "raft", "resume")
}

// SnapshotSave runs `snapshot save --tag tag` (idempotent per tag: Created is false the second time).
func (d *commands) SnapshotSave(ctx context.Context, node config.NodeConfig, tag string) (*Snapshot, *Result, error) {
	if tag == "" {
		return nil, nil, &CommandError{Command: CmdSnapshotSave, Node: node.ID, Err: fmt.Errorf("empty snapshot tag")}
	}
	parse := func(out string) (*Snapshot, error) {
		s, err := ParseSnapshot(out)
		if err == nil && s.Tag != tag {
			return nil, fmt.Errorf("%w: asked for tag %q, node reported %q", ErrMalformed, tag, excerpt(s.Tag))
		}
		return s, err
	}
	s, res, err := typed(ctx, d, node, CmdSnapshotSave, parse, "snapshot", "save", "--tag", tag)
	if s != nil && s.Node == "" {
		s.Node = node.ID
	}
	return s, res, err
}

// SnapshotList runs `snapshot list`.
func (d *commands) SnapshotList(ctx context.Context, node config.NodeConfig) ([]Snapshot, *Result, error) {
	parse := func(out string) (*[]Snapshot, error) {
		l, err := ParseSnapshotList(out)
		return &l, err
	}
	l, res, err := typed(ctx, d, node, CmdSnapshotList, parse, "snapshot", "list")
	if err != nil {
		return nil, res, err
	}
	for i := range *l {
		if (*l)[i].Node == "" {
			(*l)[i].Node = node.ID
		}
	}
	return *l, res, nil
}

// Recover runs `quorum recover --auto`. ErrNoUniqueMajority and ErrNotConverged are the
// contract's refusals; a success always names a non-empty majority that contains the leader.
func (d *commands) Recover(ctx context.Context, node config.NodeConfig) (*RecoverResult, *Result, error) {
	return typed(ctx, d, node, CmdRecover, ParseRecover, "quorum", "recover", "--auto")
}

// Netcheck runs `debug netcheck --full`.
func (d *commands) Netcheck(ctx context.Context, node config.NodeConfig) (*Netcheck, *Result, error) {
	n, res, err := typed(ctx, d, node, CmdNetcheck, ParseNetcheck, "debug", "netcheck", "--full")
	if n != nil && n.Node == "" {
		n.Node = node.ID
	}
	return n, res, err
}

func raftTyped(ctx context.Context, d *commands, node config.NodeConfig, command string, args ...string) (*RaftState, *Result, error) {
	s, res, err := typed(ctx, d, node, command, ParseRaftState, args...)
	if s != nil && s.Node == "" {
		s.Node = node.ID
	}
	return s, res, err
}

// typed runs one command and parses its stdout, counting the outcome once.
func typed[T any](ctx context.Context, d *commands, node config.NodeConfig, command string,
	parse func(string) (*T, error), args ...string) (*T, *Result, error) {
	if !d.textOutput {
		args = append(args, "-o", "json")
	}
	res, err := d.transport.exec(ctx, node, command, args)
	if err != nil {
		d.metrics.observe(command, res, err)
		return nil, res, err
	}
	if res.StdoutTruncated {
		err = &CommandError{Command: command, Node: node.ID, Kind: ErrMalformed,
			Err: fmt.Errorf("output exceeds %d bytes", d.maxOutput)}
		d.metrics.observe(command, res, err)
		return nil, res, err
	}
	v, perr := parse(res.Stdout)
	if perr != nil {
		err = &CommandError{Command: command, Node: node.ID, Err: perr}
	}
	d.metrics.observe(command, res, err)
	return v, res, err
}
