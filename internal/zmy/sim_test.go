package zmy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// zmysimBin is bin/zmysim built from this module by TestMain.
var zmysimBin string

// TestMain builds zmysim, and zmysimctl, the lean ctl, which the benchmark compares with it.
func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, func(dir string) { zmysimBin = filepath.Join(dir, "zmysim") },
		"./cmd/zmysim", "./cmd/zmysimctl"))
}

// simCluster is a running `zmysim run` and what its ready file says.
type simCluster struct {
	bin   string
	admin string
	nodes []config.NodeConfig
}

// startSim starts a 3-node simulated cluster for the test and stops it at cleanup.
func startSim(t testing.TB) *simCluster {
	t.Helper()
	// The simulator is this repository's own code, so a failed build is a failure, never a skip.
	sim := testenv.StartSim(t, zmysimBin, "--cluster", "t", "--nodes", "3", "--election-delay", "100ms")
	var info struct {
		Nodes []struct {
			ID, Host, Admin, PeerAddr, GRPCAddr string
			MetricsURL                          string `json:"metrics_url"`
			HealthURL                           string `json:"health_url"`
		} `json:"nodes"`
	}
	b, err := os.ReadFile(sim.ReadyFile)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &info), "ready file: %s", b)
	s := &simCluster{bin: zmysimBin, admin: sim.Admin}
	for _, n := range info.Nodes {
		s.nodes = append(s.nodes, config.NodeConfig{ID: n.ID, Host: n.Host, Admin: n.Admin, MetricsURL: n.MetricsURL, HealthURL: n.HealthURL})
	}
	require.Len(t, s.nodes, 3)
	return s
}

// fault runs `zmysim fault --admin-address A args…`.
func (s *simCluster) fault(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command(s.bin, append([]string{"fault", "--admin-address", s.admin}, args...)...).CombinedOutput()
	require.NoError(t, err, "zmysim fault %v: %s", args, out)
}

// driver is a Driver with the argv the simulator writes into its responder config.
func (s *simCluster) driver(t testing.TB, opts DriverOptions) *Driver {
	t.Helper()
	d, err := NewDriver(config.ClusterConfig{
		Name:   "t",
		Zmyctl: []string{s.bin, "ctl", "--endpoint", "{{.Node.Admin}}"},
		Nodes:  s.nodes,
	}, opts)
	require.NoError(t, err)
	return d
}

// apiDriver is an APIDriver on the simulator's admin API, as the generated config sets it up.
func (s *simCluster) apiDriver(t testing.TB, opts DriverOptions) *APIDriver {
	t.Helper()
	d, err := NewAPIDriver(config.ClusterConfig{Name: "t", Driver: config.DriverAPI, Nodes: s.nodes}, opts)
	require.NoError(t, err)
	return d
}

// contractDriver is a driver under the contract suite: the node commands, and Run for raw ones.
type contractDriver interface {
	NodeDriver
	Run(ctx context.Context, node config.NodeConfig, args ...string) (*Result, error)
}

// contractDrivers are the drivers every contract test runs, by name: zmyctl asking for JSON,
// zmyctl asking for text, and the admin API.
func (s *simCluster) contractDrivers(t testing.TB, opts DriverOptions) []struct {
	name string
	d    contractDriver
} {
	text := opts
	text.TextOutput = true
	return []struct {
		name string
		d    contractDriver
	}{
		{"zmyctl-json", s.driver(t, opts)},
		{"zmyctl-text", s.driver(t, text)},
		{"api", s.apiDriver(t, opts)},
	}
}

// failure is how an error answer reads in each driver's errors: "zmyctl exited 5" or "admin
// API answered 409".
func failure(driver string, exit, status int) string {
	if driver == "api" {
		return fmt.Sprintf("admin API answered %d", status)
	}
	return fmt.Sprintf("zmyctl exited %d", exit)
}

// The driver contract: both drivers, against the same simulated nodes, give the same parsed
// answers to every command.
func TestDriverAgainstSimulator(t *testing.T) {
	s := startSim(t)
	for _, mode := range s.contractDrivers(t, DriverOptions{}) {
		t.Run(mode.name, func(t *testing.T) {
			d := mode.d
			n1 := s.nodes[0]
			ctx := t.Context()

			st, res, err := d.Status(ctx, n1)
			require.NoError(t, err)
			require.Equal(t, "n1", st.Node)
			require.Equal(t, QuorumOK, st.Quorum)
			require.NotEmpty(t, st.LeaderID)
			require.Positive(t, st.Term)
			require.Equal(t, mode.name != "zmyctl-text", strings.HasPrefix(res.Stdout, "{"), res.Stdout)
			if mode.name != "zmyctl-text" {
				require.ElementsMatch(t, []string{"n1", "n2", "n3"}, st.Members)
			}

			rs, _, err := d.RaftState(ctx, n1)
			require.NoError(t, err)
			require.Contains(t, []string{StateLeader, StateFollower}, rs.RaftState)

			rs, _, err = d.Suspend(ctx, n1)
			require.NoError(t, err)
			require.Equal(t, StateSuspended, rs.RaftState)
			rs, _, err = d.Suspend(ctx, n1)
			require.NoError(t, err, "suspend is idempotent")
			require.Equal(t, StateSuspended, rs.RaftState)
			rs, _, err = d.RaftState(ctx, n1)
			require.NoError(t, err)
			require.Equal(t, StateSuspended, rs.RaftState)

			tag := fmt.Sprintf("pre-recover-%s-%d", mode.name, time.Now().UnixNano())
			snap, _, err := d.SnapshotSave(ctx, n1, tag)
			require.NoError(t, err)
			require.Equal(t, Snapshot{Node: "n1", Tag: tag, Created: true, Entries: snap.Entries, Shards: snap.Shards, At: snap.At}, *snap)
			snap, _, err = d.SnapshotSave(ctx, n1, tag)
			require.NoError(t, err)
			require.False(t, snap.Created, "snapshot save is idempotent per tag")
			list, _, err := d.SnapshotList(ctx, n1)
			require.NoError(t, err)
			require.Contains(t, tags(list), tag)

			rec, _, err := d.Recover(ctx, n1)
			require.NoError(t, err)
			require.ElementsMatch(t, []string{"n1", "n2", "n3"}, rec.Majority)
			require.Contains(t, rec.Majority, rec.Leader)

			rs, _, err = d.Resume(ctx, n1)
			require.NoError(t, err)
			require.NotEqual(t, StateSuspended, rs.RaftState)

			nc, _, err := d.Netcheck(ctx, n1)
			require.NoError(t, err)
			require.Equal(t, "n1", nc.Node)
			require.Zero(t, nc.PartitionScore)
			require.Len(t, nc.Peers, 2)
			for _, p := range nc.Peers {
				require.True(t, p.Reachable, p.Peer)
				require.False(t, p.FirewallBlocked, p.Peer)
			}
		})
	}
}

func tags(l []Snapshot) []string {
	var out []string
	for _, s := range l {
		out = append(out, s.Tag)
	}
	return out
}

// Refusals and faults read the same through both drivers: the same sentinel errors, the same
// exit codes, messages that name the command and the node.
func TestDriverSimulatorRefusalsAndFaults(t *testing.T) {
	for _, name := range []string{"zmyctl", "api"} {
		t.Run(name, func(t *testing.T) {
			s := startSim(t)
			var d contractDriver = s.driver(t, DriverOptions{})
			if name == "api" {
				d = s.apiDriver(t, DriverOptions{})
			}
			ctx := t.Context()
			n1, n2 := s.nodes[0], s.nodes[1]

			s.fault(t, "partition", "n1,n2/n3")
			_, _, err := d.Recover(ctx, n1)
			require.ErrorIs(t, err, ErrNotConverged)
			require.True(t, strings.HasPrefix(err.Error(), "recover n1: "+failure(name, 5, 409)+": network not converged"), err.Error())

			s.fault(t, "partition", "n1/n2/n3")
			s.fault(t, "heal")
			_, _, err = d.Recover(ctx, n1)
			require.ErrorIs(t, err, ErrNoUniqueMajority)

			_, err = d.Run(ctx, n1, "raft", "suspend")
			var ee *ExitStatusError
			require.ErrorAs(t, err, &ee)
			require.Equal(t, ExitUsage, ee.Code, "suspend without --force is a usage error")
			require.Contains(t, err.Error(), "raft suspend needs --force")

			s.fault(t, "ctl", "n2", "fail")
			_, _, err = d.Status(ctx, n2)
			require.ErrorAs(t, err, &ee)
			require.Equal(t, ExitError, ee.Code)
			require.Contains(t, err.Error(), "status n2: "+failure(name, 1, 500)+": injected failure")
			s.fault(t, "ctl", "n2", "ok")

			s.fault(t, "kill", "n2")
			_, _, err = d.Status(ctx, n2)
			require.ErrorIs(t, err, ErrUnreachable)
			require.True(t, strings.HasPrefix(err.Error(), "status n2: "), err.Error())
			require.Contains(t, err.Error(), "node unreachable")
			s.fault(t, "restart", "n2")
			require.Eventually(t, func() bool {
				_, _, err := d.Status(ctx, n2)
				return err == nil
			}, 5*time.Second, 50*time.Millisecond)
		})
	}
}

// A node that never answers costs the api driver its deadline, no more: the call ends with
// ErrTimeout, the node sees its caller go away, and the other nodes still answer.
func TestAPIDriverHungNodeTimesOut(t *testing.T) {
	s := startSim(t)
	s.fault(t, "ctl", "n2", "hang")
	d := s.apiDriver(t, DriverOptions{Timeout: 500 * time.Millisecond})
	// The caller's own deadline is far off: the call must end at the driver's, long before it.
	caller, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, res, err := d.Suspend(caller, s.nodes[1])
	require.ErrorIs(t, err, ErrTimeout)
	require.NoError(t, caller.Err(), "ended by the driver's Timeout, not by the caller's deadline")
	require.Equal(t, -1, res.Exit)
	require.Contains(t, err.Error(), "suspend n2: timed out: no answer after")
	require.Eventually(t, func() bool {
		a := auditLog(t, s)
		return len(a) > 0 && a[len(a)-1].Exit == -1
	}, 5*time.Second, 20*time.Millisecond, "the node saw its caller go away")

	st, _, err := d.Status(t.Context(), s.nodes[0])
	require.NoError(t, err)
	require.Equal(t, QuorumOK, st.Quorum)
}

func TestHungSimulatorCtlIsKilledAtTheDeadline(t *testing.T) {
	s := startSim(t)
	s.fault(t, "ctl", "n2", "hang")
	pidFile := filepath.Join(t.TempDir(), "pid")
	// A shell wrapper (like ssh would be) that records its pid, then execs zmysim ctl: the pid is
	// the process group id the driver must kill.
	d, err := NewDriver(config.ClusterConfig{
		Name:   "t",
		Zmyctl: []string{"sh", "-c", `echo $$ > ` + pidFile + `; ep=$1; shift; exec "$0" ctl --endpoint "$ep" "$@"`, s.bin, "{{.Node.Admin}}"},
		Nodes:  s.nodes,
	}, DriverOptions{Timeout: 500 * time.Millisecond})
	require.NoError(t, err)
	// The caller's own deadline is far off: the call must end at the driver's, long before it.
	caller, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, res, err := d.Suspend(caller, s.nodes[1])
	require.ErrorIs(t, err, ErrTimeout)
	require.NoError(t, caller.Err(), "ended by the driver's Timeout, not by the caller's deadline")
	require.Equal(t, -1, res.Exit)
	groupGone(t, readPid(t, pidFile))

	// The other nodes still answer through the same wrapper.
	st, _, err := d.Status(t.Context(), s.nodes[0])
	require.NoError(t, err)
	require.Equal(t, QuorumOK, st.Quorum)
}

func TestScrapeSimulatorNode(t *testing.T) {
	s := startSim(t)
	m, err := Scrape(t.Context(), nil, s.nodes[0].MetricsURL, 0)
	require.NoError(t, err)
	require.Len(t, m.Shards, 4)
	require.NotNil(t, m.Quorum)
	require.True(t, *m.Quorum)
	require.NotEmpty(t, m.LeaderID)
	require.Equal(t, m.LeaderID == "n1", m.IsLeader)
	require.Len(t, m.PeerUp, 2)
	off, _, ok := m.ClockOffset()
	require.True(t, ok)
	require.Less(t, off.Abs(), 100*time.Millisecond, "same host, same clock")

	s.fault(t, "clock", "n3", "+800ms")
	m, err = Scrape(t.Context(), nil, s.nodes[2].MetricsURL, 0)
	require.NoError(t, err)
	off, unc, ok := m.ClockOffset()
	require.True(t, ok)
	require.InDelta(t, 0.8, off.Seconds(), 0.1+unc.Seconds(), "offset %v ± %v", off, unc)

	// A 3|… partition: the minority reports no quorum and stops advancing.
	s.fault(t, "partition", "n1,n2/n3")
	require.Eventually(t, func() bool {
		m, err := Scrape(t.Context(), nil, s.nodes[2].MetricsURL, 0)
		return err == nil && m.Quorum != nil && !*m.Quorum
	}, 5*time.Second, 50*time.Millisecond)
}

// The context's actor reaches the node, as ZMY_ACTOR through zmyctl or the Zmy-Actor header
// through the admin API: its audit log and `raft state` name it.
func TestDriverCarriesTheActor(t *testing.T) {
	for _, name := range []string{"zmyctl", "api"} {
		t.Run(name, func(t *testing.T) {
			s := startSim(t)
			var d contractDriver = s.driver(t, DriverOptions{Timeout: 10 * time.Second})
			if name == "api" {
				d = s.apiDriver(t, DriverOptions{Timeout: 10 * time.Second})
			}
			ctx := WithActor(t.Context(), "r1/inc-000042/j1")
			st, _, err := d.Suspend(ctx, s.nodes[1])
			require.NoError(t, err)
			require.Equal(t, "r1/inc-000042/j1", st.SuspendedBy)
			// Without an actor, a second suspend changes nothing and the first actor stays.
			st, _, err = d.Suspend(t.Context(), s.nodes[1])
			require.NoError(t, err)
			require.Equal(t, "r1/inc-000042/j1", st.SuspendedBy)

			var actors []string
			for _, e := range auditLog(t, s) {
				actors = append(actors, e.Actor)
				require.Equal(t, []string{"raft", "suspend", "--force", "-o", "json"}, e.Args)
				require.Equal(t, name == "api", e.API == "POST /admin/v1/raft/suspend", e.API)
			}
			require.Equal(t, []string{"r1/inc-000042/j1", ""}, actors)
		})
	}
}

// auditEntry is a line of `zmysim audit`.
type auditEntry struct {
	Args  []string `json:"args"`
	Actor string   `json:"actor"`
	API   string   `json:"api"`
	Exit  int      `json:"exit"`
}

func auditLog(t testing.TB, s *simCluster) []auditEntry {
	t.Helper()
	out, err := exec.Command(s.bin, "audit", "--admin-address", s.admin).Output()
	require.NoError(t, err)
	var entries []auditEntry
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		var e auditEntry
		require.NoError(t, json.Unmarshal([]byte(line), &e), line)
		entries = append(entries, e)
	}
	return entries
}
