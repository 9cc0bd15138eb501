package zmy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
)

// fakeZmyctl writes a shell script standing in for zmyctl and returns its path. The script sees
// the rendered argv template plus the command words, exactly as a real zmyctl would.
func fakeZmyctl(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "zmyctl")
	require.NoError(t, os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755))
	return path
}

var testNode = config.NodeConfig{ID: "n1", Host: "host1", Admin: "127.0.0.1:1"}

func fakeDriver(t *testing.T, body string, opts DriverOptions) *Driver {
	t.Helper()
	cluster := config.ClusterConfig{
		Name:   "c1",
		Zmyctl: []string{fakeZmyctl(t, body), "--endpoint", "{{.Node.Admin}}", "--cluster={{.Cluster}}"},
		Nodes:  []config.NodeConfig{testNode},
	}
	d, err := NewDriver(cluster, opts)
	require.NoError(t, err)
	return d
}

func TestNewDriverRejectsBadTemplates(t *testing.T) {
	for name, argv := range map[string][]string{
		"empty":         nil,
		"syntax":        {"zmyctl", "{{.Node.Admin"},
		"unknown field": {"zmyctl", "{{.Node.Nope}}"},
		"empty program": {"{{if false}}zmyctl{{end}}"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewDriver(config.ClusterConfig{Name: "c1", Zmyctl: argv, Nodes: []config.NodeConfig{testNode}}, DriverOptions{})
			require.Error(t, err)
			require.Contains(t, err.Error(), `cluster "c1"`)
		})
	}
}

func TestRunRendersArgvPerNode(t *testing.T) {
	d := fakeDriver(t, `printf '%s|' "$@"`, DriverOptions{})
	res, err := d.Run(t.Context(), config.NodeConfig{ID: "n7", Admin: "10.0.0.7:9000"}, "raft", "state")
	require.NoError(t, err)
	require.Equal(t, "--endpoint|10.0.0.7:9000|--cluster=c1|raft|state|", res.Stdout)
	require.Equal(t, 0, res.Exit)
	require.Equal(t, "n7", res.Node)
	require.Equal(t, CmdRaftState, res.Command)
	require.Equal(t, []string{"--endpoint", "10.0.0.7:9000", "--cluster=c1", "raft", "state"}, res.Args[1:])
	require.Positive(t, res.Duration)
}

func TestTypedCommandsAskForJSONUnlessTextOutput(t *testing.T) {
	// The fake answers in whichever form it was asked for, as the contract says zmyctl does.
	body := `case "$*" in
*"-o json"*) echo '{"node":"n1","quorum":"QUORUM_LOST","leader_id":"","term":4}' ;;
*) echo 'QUORUM_OK leader_id=n2 term=9 node=n1' ;;
esac`
	s, res, err := fakeDriver(t, body, DriverOptions{}).Status(t.Context(), testNode)
	require.NoError(t, err)
	require.Equal(t, QuorumLost, s.Quorum)
	require.Equal(t, []string{"status", "--quorum", "-o", "json"}, res.Args[len(res.Args)-4:])

	s, res, err = fakeDriver(t, body, DriverOptions{TextOutput: true}).Status(t.Context(), testNode)
	require.NoError(t, err)
	require.Equal(t, &QuorumStatus{Node: "n1", Quorum: QuorumOK, LeaderID: "n2", Term: 9}, s)
	require.NotContains(t, res.Args, "json")
}

func TestExitCodesMapToTypedErrors(t *testing.T) {
	for _, tc := range []struct {
		code     int
		sentinel error
	}{
		{ExitError, nil},
		{ExitUsage, nil},
		{ExitUnreachable, ErrUnreachable},
		{ExitNoUniqueMajority, ErrNoUniqueMajority},
		{ExitNotConverged, ErrNotConverged},
		{ExitRefused, ErrRefused},
		{42, nil},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			d := fakeDriver(t, fmt.Sprintf(`echo "error: something about %d" >&2; exit %d`, tc.code, tc.code), DriverOptions{})
			_, res, err := d.Suspend(t.Context(), testNode)
			require.Error(t, err)
			require.Equal(t, tc.code, res.Exit)
			var ee *ExitStatusError
			require.ErrorAs(t, err, &ee)
			require.Equal(t, tc.code, ee.Code)
			require.Equal(t, fmt.Sprintf("error: something about %d", tc.code), ee.Stderr)
			for _, s := range []error{ErrUnreachable, ErrNoUniqueMajority, ErrNotConverged, ErrRefused, ErrTimeout, ErrMalformed} {
				require.Equal(t, s == tc.sentinel, errors.Is(err, s), "errors.Is(%v)", s)
			}
			want := fmt.Sprintf("suspend n1: zmyctl exited %d: ", tc.code)
			if tc.sentinel != nil {
				want += tc.sentinel.Error() + ": "
			}
			require.Equal(t, want+fmt.Sprintf("something about %d", tc.code), err.Error())
		})
	}
}

func TestErrorMessageDoesNotRepeatTheReason(t *testing.T) {
	d := fakeDriver(t, `echo "error: node unreachable: dial tcp 127.0.0.1:1: connection refused" >&2; exit 3`, DriverOptions{})
	_, _, err := d.Suspend(t.Context(), testNode)
	require.EqualError(t, err, "suspend n1: zmyctl exited 3: node unreachable: dial tcp 127.0.0.1:1: connection refused")
}

func TestMalformedOutputIsTypedError(t *testing.T) {
	for name, out := range map[string]string{
		"empty":          ``,
		"garbage":        `hello world`,
		"truncated json": `{"node":"n1","quorum":`,
		"wrong shape":    `{"node":"n1"}`,
		"trailing":       `{"node":"n1","quorum":"QUORUM_OK"} {"x":1}`,
		"array":          `[1,2,3]`,
		"binary":         "\x00\xff\xfe",
	} {
		t.Run(name, func(t *testing.T) {
			d := fakeDriver(t, "printf '%s' '"+strings.ReplaceAll(out, "'", `'\''`)+"'", DriverOptions{})
			s, res, err := d.Status(t.Context(), testNode)
			require.ErrorIs(t, err, ErrMalformed)
			require.Nil(t, s)
			require.NotNil(t, res, "the raw output is kept as evidence")
			require.True(t, strings.HasPrefix(err.Error(), "status n1: malformed output"), err.Error())
		})
	}
}

func TestOversizedOutputIsCappedAndMalformed(t *testing.T) {
	// 4 MiB of output against a 64 KiB cap: the child must not block on a full pipe, we must not
	// keep more than the cap, and a typed command must refuse to parse a cut document.
	d := fakeDriver(t, `head -c 4194304 /dev/zero | tr '\0' 'x'; echo; head -c 200000 /dev/zero >&2`, DriverOptions{MaxOutput: 64 << 10})
	res, err := d.Run(t.Context(), testNode, "raft", "state")
	require.NoError(t, err)
	require.Len(t, res.Stdout, 64<<10)
	require.Len(t, res.Stderr, 64<<10)
	require.True(t, res.StdoutTruncated)
	require.True(t, res.StderrTruncated)

	_, res, err = d.RaftState(t.Context(), testNode)
	require.ErrorIs(t, err, ErrMalformed)
	require.Contains(t, err.Error(), "output exceeds 65536 bytes")
	require.True(t, res.StdoutTruncated)
}

// groupGone waits until the process group pgid has no live member, then until it is gone
// altogether. The two steps differ only by the zombie reaping of PID 1, which may be lazy (here
// it takes about 1.5s), so only the first has a tight deadline.
func groupGone(t *testing.T, pgid int) {
	t.Helper()
	require.Eventually(t, func() bool { return len(liveGroupMembers(t, pgid)) == 0 },
		10*time.Second, 10*time.Millisecond, "process group %d still has live members", pgid)
	require.Eventually(t, func() bool {
		return errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
	}, 10*time.Second, 20*time.Millisecond, "process group %d still exists", pgid)
}

// liveGroupMembers lists the pids in process group pgid that are not zombies, from /proc.
func liveGroupMembers(t *testing.T, pgid int) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	require.NoError(t, err)
	var live []int
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // exited while we looked
		}
		// pid (comm) state ppid pgrp …; comm may hold spaces, so split after the last ')'.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 3 || fields[0] == "Z" || fields[2] != strconv.Itoa(pgid) {
			continue
		}
		pid, _ := strconv.Atoi(strings.Fields(s)[0])
		live = append(live, pid)
	}
	return live
}

// readPid reads a pid the fake wrote, waiting (up to a deadline a loaded machine meets) for it to appear.
func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	}, 10*time.Second, 5*time.Millisecond)
	return pid
}

func TestHungZmyctlIsKilledWithItsGroupAtTheDeadline(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	// A wrapper that starts a grandchild and then hangs: both must die at the deadline.
	d := fakeDriver(t, `echo $$ > `+pidFile+`; sleep 60 & sleep 60; echo never`, DriverOptions{Timeout: 300 * time.Millisecond})
	start := time.Now()
	_, res, err := d.Suspend(t.Context(), testNode)
	elapsed := time.Since(start)
	require.ErrorIs(t, err, ErrTimeout)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, elapsed, 2*time.Second, "the call must end at its deadline")
	require.GreaterOrEqual(t, elapsed, 300*time.Millisecond)
	require.Equal(t, -1, res.Exit)
	require.True(t, strings.HasPrefix(err.Error(), "suspend n1: timed out: killed after "), err.Error())
	groupGone(t, readPid(t, pidFile))
}

func TestContextDeadlineEarlierThanTimeoutWins(t *testing.T) {
	t.Parallel()
	d := fakeDriver(t, `sleep 60`, DriverOptions{Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := d.Run(ctx, testNode, "raft", "state")
	require.ErrorIs(t, err, ErrTimeout)
	require.Less(t, time.Since(start), 2*time.Second)
}

func TestCancelIsNotATimeout(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	d := fakeDriver(t, `echo $$ > `+pidFile+`; sleep 60`, DriverOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		// Cancel once zmyctl is surely running (no require here: not the test goroutine).
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if b, err := os.ReadFile(pidFile); err == nil && len(b) > 0 {
				break
			}
		}
		cancel()
	}()
	_, err := d.Run(ctx, testNode, "raft", "state")
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, ErrTimeout)
	groupGone(t, readPid(t, pidFile))

	_, err = d.Run(ctx, testNode, "raft", "state")
	require.ErrorIs(t, err, context.Canceled, "an already cancelled context runs nothing")
}

func TestGrandchildHoldingThePipeDoesNotBlock(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	// zmyctl answers and exits, leaving a background child that inherited stdout: without the
	// group kill, reading stdout would wait for it for a minute.
	d := fakeDriver(t, `echo $$ > `+pidFile+`; sleep 60 & echo '{"node":"n1","raft_state":"suspended","term":3}'`, DriverOptions{Timeout: 30 * time.Second})
	start := time.Now()
	s, _, err := d.Suspend(t.Context(), testNode)
	require.NoError(t, err)
	require.Equal(t, StateSuspended, s.RaftState)
	require.Less(t, time.Since(start), DefaultWaitDelay, "the group is killed when zmyctl exits, before WaitDelay")
	groupGone(t, readPid(t, pidFile))
}

func TestEscapedGrandchildIsBoundedByWaitDelay(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("setsid"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("setsid (util-linux) is required under CI: %v", err)
		}
		t.Skipf("setsid (util-linux) not installed: %v", err)
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	// setsid puts the grandchild beyond our group kill; WaitDelay still closes the pipes on it.
	d := fakeDriver(t, `setsid sh -c 'echo $$ > `+pidFile+`; exec sleep 60' & echo '{"node":"n1","raft_state":"follower"}'; sleep 0.2`,
		DriverOptions{Timeout: 30 * time.Second, WaitDelay: 300 * time.Millisecond})
	start := time.Now()
	s, _, err := d.RaftState(t.Context(), testNode)
	escaped := readPid(t, pidFile)
	t.Cleanup(func() { _ = syscall.Kill(escaped, syscall.SIGKILL) })
	require.NoError(t, err)
	require.Equal(t, StateFollower, s.RaftState)
	require.Less(t, time.Since(start), 3*time.Second)
}

func TestMissingProgramIsAnError(t *testing.T) {
	d, err := NewDriver(config.ClusterConfig{Name: "c1", Zmyctl: []string{"/nonexistent/zmyctl"}}, DriverOptions{})
	require.NoError(t, err)
	_, res, err := d.Netcheck(t.Context(), testNode)
	require.ErrorIs(t, err, os.ErrNotExist)
	require.Contains(t, err.Error(), "netcheck n1: start /nonexistent/zmyctl")
	require.Equal(t, -1, res.Exit)
}

func TestCommandMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	ok := fakeDriver(t, `echo '{"node":"n1","raft_state":"suspended"}'`, DriverOptions{Registerer: reg})
	// A second driver (another cluster, or a reload) shares the same series.
	slow := fakeDriver(t, `sleep 60`, DriverOptions{Registerer: reg, Timeout: 100 * time.Millisecond})
	bad := fakeDriver(t, `echo nonsense`, DriverOptions{Registerer: reg})

	n, err := testutil.GatherAndCount(reg, "zmy_responder_commands_total")
	require.NoError(t, err)
	require.Equal(t, len(Commands)*3, n, "every command×result series exists at zero")

	_, _, err = ok.Suspend(t.Context(), testNode)
	require.NoError(t, err)
	_, _, err = slow.Suspend(t.Context(), testNode)
	require.ErrorIs(t, err, ErrTimeout)
	_, _, err = bad.Suspend(t.Context(), testNode)
	require.ErrorIs(t, err, ErrMalformed)
	_, err = ok.Run(t.Context(), testNode, "frobnicate")
	require.NoError(t, err)

	c := ok.metrics.commands
	require.Equal(t, 1.0, testutil.ToFloat64(c.WithLabelValues(CmdSuspend, "ok")))
	require.Equal(t, 1.0, testutil.ToFloat64(c.WithLabelValues(CmdSuspend, "timeout")))
	require.Equal(t, 1.0, testutil.ToFloat64(c.WithLabelValues(CmdSuspend, "error")))
	require.Equal(t, 1.0, testutil.ToFloat64(c.WithLabelValues(CmdOther, "ok")))
	require.Equal(t, 0.0, testutil.ToFloat64(c.WithLabelValues(CmdResume, "ok")))
	require.Equal(t, len(Commands), testutil.CollectAndCount(ok.metrics.duration))

	want := map[string]int{CmdSuspend + "/ok": 1, CmdSuspend + "/timeout": 1, CmdSuspend + "/error": 1, CmdOther + "/ok": 1}
	var exp strings.Builder
	exp.WriteString("# HELP zmy_responder_commands_total Node commands sent (zmyctl runs or admin API calls), by command and result (ok, error, timeout).\n")
	exp.WriteString("# TYPE zmy_responder_commands_total counter\n")
	for _, cmd := range Commands {
		for _, r := range []string{"error", "ok", "timeout"} {
			fmt.Fprintf(&exp, "zmy_responder_commands_total{command=%q,result=%q} %d\n", cmd, r, want[cmd+"/"+r])
		}
	}
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(exp.String()), "zmy_responder_commands_total"))
}

func TestCommandName(t *testing.T) {
	for args, want := range map[string]string{
		"status --quorum -o json":            CmdStatus,
		"-o json status --quorum":            CmdStatus,
		"raft state":                         CmdRaftState,
		"--output json raft suspend --force": CmdSuspend,
		"raft resume":                        CmdResume,
		"snapshot save --tag x":              CmdSnapshotSave,
		"snapshot list":                      CmdSnapshotList,
		"quorum recover --auto":              CmdRecover,
		"debug netcheck --full":              CmdNetcheck,
		"frobnicate":                         CmdOther,
		"":                                   CmdOther,
	} {
		require.Equal(t, want, commandName(strings.Fields(args)), args)
	}
}

func TestZmyctlEnvIsAddedToTheResponderEnvironment(t *testing.T) {
	t.Setenv("ZMY_TEST_INHERITED", "from-responder")
	t.Setenv("ZMY_TEST_OVERRIDDEN", "from-responder")
	cluster := config.ClusterConfig{
		Name:      "c1",
		Zmyctl:    []string{fakeZmyctl(t, `echo "$ZMY_TEST_INHERITED $ZMY_TEST_OVERRIDDEN $ZMY_TEST_ADDED" >&2; exit 1`)},
		ZmyctlEnv: map[string]string{"ZMY_TEST_OVERRIDDEN": "from-config", "ZMY_TEST_ADDED": "added"},
		Nodes:     []config.NodeConfig{testNode},
	}
	d, err := NewDriver(cluster, DriverOptions{})
	require.NoError(t, err)
	_, res, err := d.Status(t.Context(), testNode)
	require.Error(t, err)
	require.Equal(t, "from-responder from-config added\n", res.Stderr)
}

func TestActor(t *testing.T) {
	a := Actor{Replica: "r1", Incident: "inc-000042", Token: "j7f3a.12"}
	require.Equal(t, "r1/inc-000042/j7f3a.12", a.String())
	b, ok := ParseActor(a.String())
	require.True(t, ok)
	require.Equal(t, a, b)
	require.Equal(t, "j7f3a", b.Store())
	other, _ := ParseActor("r2/inc-000041/j7f3a.13")
	require.True(t, a.SameJournal(other), "another replica, or an earlier incident, of the same journal")
	other, _ = ParseActor("r1/inc-000042/j0000")
	require.False(t, a.SameJournal(other), "another journal's incident of the same id is not")
	for _, s := range []string{"", "alice", "r1/inc-1", "r1//tok", "r1/inc-1/"} {
		_, ok := ParseActor(s)
		require.False(t, ok, s)
	}
}

func TestZmyctlBeingWrittenIsStartedOnceTheWriterCloses(t *testing.T) {
	path := fakeZmyctl(t, `echo '{"ok":true}'`)
	d, err := NewDriver(config.ClusterConfig{Name: "c1", Zmyctl: []string{path}, Nodes: []config.NodeConfig{testNode}}, DriverOptions{Timeout: 5 * time.Second})
	require.NoError(t, err)
	// Hold the executable open for writing, as a package upgrade replacing zmyctl (or a fork
	// that inherited a just-written file's descriptor) does: exec fails with ETXTBSY meanwhile.
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	require.NoError(t, err)
	busy := make(chan struct{}, 1)
	textBusyRetry = func() {
		select {
		case busy <- struct{}{}:
		default:
		}
	}
	t.Cleanup(func() { textBusyRetry = func() {} })
	done := make(chan error, 1)
	go func() {
		_, err := d.Run(t.Context(), testNode, "raft", "state")
		done <- err
	}()
	select { // the first start met the busy file
	case <-busy:
	case err := <-done:
		t.Fatalf("the command ended (%v) without meeting the busy file", err)
	}
	require.NoError(t, f.Close())
	require.NoError(t, <-done, "a start refused with 'text file busy' is tried again: nothing ran")
}
