package zmy

import (
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

func TestDriverAgainstSimulator(t *testing.T) {
	s := startSim(t)
	for _, mode := range []struct {
		name string
		opts DriverOptions
	}{{"json", DriverOptions{}}, {"text", DriverOptions{TextOutput: true}}} {
		t.Run(mode.name, func(t *testing.T) {
			d := s.driver(t, mode.opts)
			n1 := s.nodes[0]
			ctx := t.Context()

			st, res, err := d.Status(ctx, n1)
			require.NoError(t, err)
			require.Equal(t, "n1", st.Node)
			require.Equal(t, QuorumOK, st.Quorum)
			require.NotEmpty(t, st.LeaderID)
			require.Positive(t, st.Term)
			require.Equal(t, mode.name == "json", strings.HasPrefix(res.Stdout, "{"), res.Stdout)
			if mode.name == "json" {
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

func TestDriverSimulatorRefusalsAndFaults(t *testing.T) {
	s := startSim(t)
	d := s.driver(t, DriverOptions{})
	ctx := t.Context()
	n1, n2 := s.nodes[0], s.nodes[1]

	s.fault(t, "partition", "n1,n2/n3")
	_, _, err := d.Recover(ctx, n1)
	require.ErrorIs(t, err, ErrNotConverged)
	require.True(t, strings.HasPrefix(err.Error(), "recover n1: zmyctl exited 5: network not converged"), err.Error())

	s.fault(t, "partition", "n1/n2/n3")
	s.fault(t, "heal")
	_, _, err = d.Recover(ctx, n1)
	require.ErrorIs(t, err, ErrNoUniqueMajority)

	_, err = d.Run(ctx, n1, "raft", "suspend")
	var ee *ExitStatusError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, ExitUsage, ee.Code, "suspend without --force is a usage error")

	s.fault(t, "ctl", "n2", "fail")
	_, _, err = d.Status(ctx, n2)
	require.ErrorAs(t, err, &ee)
	require.Equal(t, ExitError, ee.Code)
	s.fault(t, "ctl", "n2", "ok")

	s.fault(t, "kill", "n2")
	_, _, err = d.Status(ctx, n2)
	require.ErrorIs(t, err, ErrUnreachable)
	require.True(t, strings.HasPrefix(err.Error(), "status n2: zmyctl exited 3: node unreachable"), err.Error())
	s.fault(t, "restart", "n2")
	require.Eventually(t, func() bool {
		_, _, err := d.Status(ctx, n2)
		return err == nil
	}, 5*time.Second, 50*time.Millisecond)
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
	start := time.Now()
	_, res, err := d.Suspend(t.Context(), s.nodes[1])
	require.ErrorIs(t, err, ErrTimeout)
	require.Less(t, time.Since(start), 3*time.Second)
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

// The context's actor reaches the node as ZMY_ACTOR: its audit log and `raft state` name it.
func TestDriverCarriesTheActor(t *testing.T) {
	s := startSim(t)
	d := s.driver(t, DriverOptions{Timeout: 10 * time.Second})
	ctx := WithActor(t.Context(), "r1/inc-000042/j1")
	st, _, err := d.Suspend(ctx, s.nodes[1])
	require.NoError(t, err)
	require.Equal(t, "r1/inc-000042/j1", st.SuspendedBy)
	// Without an actor, a second suspend changes nothing and the first actor stays.
	st, _, err = d.Suspend(t.Context(), s.nodes[1])
	require.NoError(t, err)
	require.Equal(t, "r1/inc-000042/j1", st.SuspendedBy)

	out, err := exec.Command(s.bin, "audit", "--admin-address", s.admin).Output()
	require.NoError(t, err)
	var actors []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var e struct {
			Args  []string `json:"args"`
			Actor string   `json:"actor"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &e), line)
		actors = append(actors, e.Actor)
	}
	require.Equal(t, []string{"r1/inc-000042/j1", ""}, actors)
}
