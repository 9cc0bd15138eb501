package zmy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zmyorg/zmy-responder/internal/config"
)

// Command names: the `command` label of the driver's metrics and the first word of its errors.
const (
	CmdStatus       = "status"
	CmdRaftState    = "raft_state"
	CmdSuspend      = "suspend"
	CmdResume       = "resume"
	CmdSnapshotSave = "snapshot_save"
	CmdSnapshotList = "snapshot_list"
	CmdRecover      = "recover"
	CmdNetcheck     = "netcheck"
	CmdOther        = "other" // Run with arguments that are none of the above
)

// Commands lists every command name; metrics pre-create their label values from it.
var Commands = []string{CmdStatus, CmdRaftState, CmdSuspend, CmdResume, CmdSnapshotSave,
	CmdSnapshotList, CmdRecover, CmdNetcheck, CmdOther}

// Defaults of DriverOptions.
const (
	DefaultTimeout   = 10 * time.Second
	DefaultMaxOutput = 1 << 20
	// DefaultWaitDelay bounds how long an escaped descendant can keep our pipes after zmyctl
	// exited. It is not 1s because under load the copy of zmyctl's output can lag its exit by
	// more than that: with 400 concurrent execs on 2 cores, 11 of 1,200 calls lost their output
	// at 1s, none at 5s (slowest 1.7s).
	DefaultWaitDelay = 5 * time.Second
)

// DriverOptions tunes a Driver. The zero value is usable.
type DriverOptions struct {
	// Timeout bounds each call when ctx has no earlier deadline. Default: the cluster's
	// command_timeout if set, else DefaultTimeout.
	Timeout time.Duration
	// MaxOutput is how many bytes of stdout and of stderr are kept; the rest is read and
	// discarded so the child never blocks on a full pipe. Default DefaultMaxOutput.
	MaxOutput int64
	// WaitDelay is how long, after zmyctl exited or was killed, we wait for an escaped descendant
	// that still holds its pipes before closing them. Default DefaultWaitDelay.
	WaitDelay time.Duration
	// TextOutput stops the driver from passing `-o json`, for a zmyctl that only speaks text.
	// The parsers accept both forms whatever this says.
	TextOutput bool
	// Registerer receives zmy_responder_commands_total and _command_duration_seconds. Several
	// drivers may share one registry. Nil registers nothing.
	Registerer prometheus.Registerer
}

// Result is one zmyctl run, kept as evidence in the incident record.
type Result struct {
	Node     string        `json:"node"`
	Command  string        `json:"command"` // command name, see Commands
	Args     []string      `json:"args"`    // the full argv run
	Exit     int           `json:"exit"`    // -1 when killed by a signal or never started
	Stdout   string        `json:"stdout"`
	Stderr   string        `json:"stderr"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration"`
	// StdoutTruncated and StderrTruncated say output went past MaxOutput and was cut.
	StdoutTruncated bool `json:"stdout_truncated,omitempty"`
	StderrTruncated bool `json:"stderr_truncated,omitempty"`
}

// Driver runs zmyctl for one cluster through its argv template. It is safe for concurrent use.
type Driver struct {
	commands
	cluster   string
	argv      *config.ArgvTemplate
	timeout   time.Duration
	waitDelay time.Duration
	env       []string // the responder's environment plus the cluster's zmyctl_env; nil: inherit
}

// NewDriver parses the cluster's argv template and checks it renders for every configured node,
// so a typo fails at config load rather than in the middle of an incident.
func NewDriver(cluster config.ClusterConfig, opts DriverOptions) (*Driver, error) {
	if len(cluster.Zmyctl) == 0 {
		return nil, fmt.Errorf("cluster %q: zmyctl argv template is empty", cluster.Name)
	}
	d := &Driver{
		cluster:   cluster.Name,
		timeout:   opts.timeout(cluster),
		waitDelay: opts.WaitDelay,
	}
	if d.waitDelay <= 0 {
		d.waitDelay = DefaultWaitDelay
	}
	if len(cluster.ZmyctlEnv) > 0 {
		d.env = os.Environ()
		for _, k := range slices.Sorted(maps.Keys(cluster.ZmyctlEnv)) {
			d.env = append(d.env, k+"="+cluster.ZmyctlEnv[k]) // later entries win in os/exec
		}
	}
	argv, err := cluster.ParseArgv()
	if err != nil {
		return nil, fmt.Errorf("cluster %q: parse zmyctl argv template: %w", cluster.Name, err)
	}
	d.argv = argv
	for _, n := range cluster.Nodes {
		argv, err := d.render(n)
		if err != nil {
			return nil, fmt.Errorf("cluster %q: %w", cluster.Name, err)
		}
		if argv[0] == "" {
			return nil, fmt.Errorf("cluster %q: zmyctl argv template renders an empty program name for node %s", cluster.Name, n.ID)
		}
	}
	if d.commands, err = newCommands(d, cluster.Name, opts, opts.TextOutput); err != nil {
		return nil, err
	}
	return d, nil
}

// timeout is the per-call bound: Timeout, else the cluster's command_timeout, else DefaultTimeout.
func (o DriverOptions) timeout(cluster config.ClusterConfig) time.Duration {
	switch {
	case o.Timeout > 0:
		return o.Timeout
	case cluster.CommandTimeout > 0:
		return time.Duration(cluster.CommandTimeout)
	}
	return DefaultTimeout
}

func (o DriverOptions) maxOutput() int64 {
	if o.MaxOutput > 0 {
		return o.MaxOutput
	}
	return DefaultMaxOutput
}

// render executes the argv template for one node.
func (d *Driver) render(node config.NodeConfig) ([]string, error) {
	argv, err := d.argv.Render(node)
	if err != nil {
		return nil, fmt.Errorf("render zmyctl argv template for node %s: %w", node.ID, err)
	}
	return argv, nil
}

// exec runs zmyctl with args on node (Run without the metrics, so typed methods can count a
// parse failure as the outcome). On the deadline the whole process group is killed.
func (d *Driver) exec(ctx context.Context, node config.NodeConfig, command string, args []string) (*Result, error) {
	fail := func(kind, err error) *CommandError {
		return &CommandError{Command: command, Node: node.ID, Kind: kind, Err: err}
	}
	argv, err := d.render(node)
	if err != nil {
		return nil, fail(nil, err)
	}
	argv = append(argv, args...)
	res := &Result{Node: node.ID, Command: command, Args: argv, Exit: -1, Started: time.Now()}
	if err := ctx.Err(); err != nil {
		return res, fail(ctxKind(err), fmt.Errorf("before start: %w", err))
	}

	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	env := d.env
	if actor := ActorFrom(ctx); actor != "" {
		if env == nil {
			env = os.Environ()
		}
		env = append(slices.Clip(env), ActorEnv+"="+actor) // later entries win
	}
	stdout, stderr := &cappedBuffer{max: d.maxOutput}, &cappedBuffer{max: d.maxOutput}
	var cmd *exec.Cmd
	for attempt := 0; ; attempt++ {
		cmd = exec.CommandContext(ctx, argv[0], argv[1:]...)
		startInGroup(cmd)
		cmd.Env = env
		cmd.WaitDelay = d.waitDelay
		cmd.Stdout, cmd.Stderr = stdout, stderr
		err := cmd.Start()
		if err == nil {
			break
		}
		// "text file busy": the executable is still open for writing somewhere (being
		// replaced by a package upgrade, or a just-written file whose descriptor a concurrent
		// fork inherited). Nothing ran; trying again shortly is safe.
		if isTextBusy(err) && attempt < 20 {
			textBusyRetry()
		}
		if isTextBusy(err) && attempt < 20 && sleepCtx(ctx, time.Duration(attempt+1)*5*time.Millisecond) {
			continue
		}
		res.Duration = time.Since(res.Started)
		return res, fail(nil, fmt.Errorf("start %s: %w", argv[0], err))
	}
	// Kill leftovers of the group as soon as the leader exits, so a backgrounded grandchild
	// neither holds our pipes until WaitDelay nor outlives the call.
	awaitExitAndKillGroup(cmd.Process.Pid)
	waitErr := cmd.Wait()
	res.Duration = time.Since(res.Started)
	res.Stdout, res.StdoutTruncated = stdout.result()
	res.Stderr, res.StderrTruncated = stderr.result()
	if cmd.ProcessState != nil {
		res.Exit = cmd.ProcessState.ExitCode()
	}

	if ctxErr := ctx.Err(); ctxErr != nil && (waitErr != nil || res.Exit != 0) {
		return res, fail(ctxKind(ctxErr), fmt.Errorf("killed after %s: %w", res.Duration.Round(time.Millisecond), ctxErr))
	}
	var exitErr *exec.ExitError
	switch {
	case res.Exit > 0:
		ee := &ExitStatusError{Code: res.Exit, Stderr: strings.TrimSpace(res.Stderr)}
		return res, &CommandError{Command: command, Node: node.ID, Kind: sentinelForExit(res.Exit), Exit: ee}
	case errors.As(waitErr, &exitErr):
		// Killed by a signal we did not send (e.g. the OOM killer).
		return res, fail(nil, fmt.Errorf("zmyctl %w", waitErr))
	case errors.Is(waitErr, exec.ErrWaitDelay):
		// zmyctl exited 0 but an escaped descendant kept the pipes; we have what zmyctl wrote.
		return res, nil
	case waitErr != nil:
		return res, fail(nil, fmt.Errorf("wait for zmyctl: %w", waitErr))
	}
	return res, nil
}

// ctxKind is ErrTimeout for a deadline and nil for a plain cancellation, which is not the
// node's fault.
func ctxKind(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return ErrTimeout
	}
	return nil
}

// commandName maps zmyctl arguments to a command name, ignoring output flags.
func commandName(args []string) string {
	words := make([]string, 0, 2)
	for i := 0; i < len(args) && len(words) < 2; i++ {
		a := args[i]
		switch {
		case a == "-o" || a == "--output":
			i++
		case strings.HasPrefix(a, "-"):
		default:
			words = append(words, a)
		}
	}
	switch strings.Join(words, " ") {
	case "status":
		return CmdStatus
	case "raft state":
		return CmdRaftState
	case "raft suspend":
		return CmdSuspend
	case "raft resume":
		return CmdResume
	case "snapshot save":
		return CmdSnapshotSave
	case "snapshot list":
		return CmdSnapshotList
	case "quorum recover":
		return CmdRecover
	case "debug netcheck":
		return CmdNetcheck
	}
	return CmdOther
}

// cappedBuffer keeps the first max bytes written and counts, but discards, the rest: the child
// must be able to write everything it wants or it would block on a full pipe.
type cappedBuffer struct {
	mu        sync.Mutex
	max       int64
	buf       bytes.Buffer
	truncated bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - int64(c.buf.Len()); room < int64(len(p)) {
		c.truncated = true
		if room > 0 {
			c.buf.Write(p[:room])
		}
		return len(p), nil
	}
	c.buf.Write(p)
	return len(p), nil
}

func (c *cappedBuffer) result() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String(), c.truncated
}

// textBusyRetry is called before each retry of a start refused with ETXTBSY (a seam for tests).
var textBusyRetry = func() {}

// sleepCtx waits d, or less if ctx ends first; it reports whether the full wait elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
