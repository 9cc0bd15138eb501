package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/zmyorg/zmy-responder/internal/zmy"
)

func startCluster(t *testing.T, nodes int, rate float64) *Cluster {
	t.Helper()
	c, err := Start(t.Context(), Options{Cluster: "test", Nodes: nodes, WriteRate: rate,
		ElectionDelay: 100 * time.Millisecond, AdminAddress: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type ctlResult struct {
	exit           int
	stdout, stderr string
}

func ctl(ctx context.Context, c *Cluster, node string, args ...string) ctlResult {
	var out, errOut bytes.Buffer
	code := RunCtl(ctx, c.endpoint(node).Admin, args, &out, &errOut)
	return ctlResult{code, out.String(), errOut.String()}
}

func (c *Cluster) endpoint(node string) NodeEndpoints {
	for _, ep := range c.Endpoints().Nodes {
		if ep.ID == node {
			return ep
		}
	}
	panic("no node " + node)
}

func ctlJSON[T any](t *testing.T, c *Cluster, node string, args ...string) T {
	t.Helper()
	r := ctl(t.Context(), c, node, append(args, "-o", "json")...)
	require.Equal(t, 0, r.exit, "ctl %s %v: %s", node, args, r.stderr)
	var v T
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v), r.stdout)
	return v
}

func scrape(t *testing.T, url string) map[string]*dto {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(pmodel.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	out := map[string]*dto{}
	for name, f := range fams {
		d := &dto{values: map[string]float64{}}
		for _, m := range f.GetMetric() {
			var key []string
			for _, l := range m.GetLabel() {
				key = append(key, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue()
			if m.GetCounter() != nil {
				v = m.GetCounter().GetValue()
			}
			d.values[strings.Join(key, ",")] = v
		}
		out[name] = d
	}
	return out
}

// dto is one scraped metric family: label set ("k=v,…") -> value.
type dto struct{ values map[string]float64 }

func (d *dto) get(labels string) float64 {
	if d == nil {
		return -1
	}
	return d.values[labels]
}

func tcpOpen(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

func TestNodeSurfaces(t *testing.T) {
	c := startCluster(t, 3, 100)
	ep := c.endpoint("n1")

	resp, err := http.Get(ep.HealthURL)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.JSONEq(t, `{"status":"ok"}`, string(body))

	conn, err := grpc.NewClient(ep.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	hr, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, hr.GetStatus())

	pc, err := net.DialTimeout("tcp", ep.PeerAddr, time.Second)
	require.NoError(t, err)
	banner, _ := io.ReadAll(pc)
	pc.Close()
	require.Equal(t, "ZMY-PEER n1\n", string(banner))

	waitFor(t, 5*time.Second, "writes applied", func() bool {
		return scrape(t, ep.MetricsURL)[zmy.MetricShardLastApplied].get("shard=4") > 0
	})
	fams := scrape(t, ep.MetricsURL)
	for _, name := range []string{zmy.MetricShardLastApplied, zmy.MetricQuorum, zmy.MetricIsLeader,
		zmy.MetricLeaderInfo, zmy.MetricTerm, zmy.MetricSuspended, zmy.MetricPeerRTT, zmy.MetricPeerUp,
		zmy.MetricSyncLag, zmy.MetricClock, zmy.MetricWritesTotal, zmy.MetricPartitionScore,
		"shard_1_last_applied_index"} {
		require.Contains(t, fams, name)
	}
	require.Equal(t, 1.0, fams[zmy.MetricQuorum].get(""))
	require.Equal(t, 1.0, fams[zmy.MetricIsLeader].get(""))
	require.Equal(t, 1.0, fams[zmy.MetricLeaderInfo].get("leader_id=n1"))
	rtt := fams[zmy.MetricPeerRTT].get("peer=n2")
	require.True(t, rtt >= 0.0005 && rtt <= 0.003, "loopback-like RTT, got %v", rtt)
	require.InDelta(t, float64(time.Now().UnixNano())/1e9, fams[zmy.MetricClock].get(""), 2)
	require.Positive(t, fams[zmy.MetricWritesTotal].get("result=accepted"))

	// The command surface, text and JSON.
	r := ctl(t.Context(), c, "n2", "status", "--quorum")
	require.Equal(t, 0, r.exit, r.stderr)
	require.Regexp(t, `^QUORUM_OK leader_id=n1 term=1 node=n2\n$`, r.stdout)
	st := ctlJSON[zmy.RaftState](t, c, "n2", "raft", "state")
	require.Equal(t, zmy.RaftState{Node: "n2", RaftState: zmy.StateFollower, Term: 1, LeaderID: "n1"}, st)
	r = ctl(t.Context(), c, "n2", "raft", "state") // JSON even without -o json
	require.Contains(t, r.stdout, `"raft_state":"follower"`)
	nc := ctlJSON[zmy.Netcheck](t, c, "n1", "-o", "json", "debug", "netcheck", "--full")
	require.Len(t, nc.Peers, 2)
	require.Zero(t, nc.PartitionScore)
	require.Equal(t, c.endpoint("n2").PeerAddr, nc.Peers[0].Addr)
	r = ctl(t.Context(), c, "n1", "debug", "netcheck", "--full")
	require.Regexp(t, `(?m)^peer=n2 addr=\S+ reachable=true rtt_ms=[0-9.]+ firewall_blocked=false$`, r.stdout)
	require.Contains(t, r.stdout, "partition_score=0.00 node=n1\n")

	for _, bad := range [][]string{{"raft", "suspend"}, {"nope"}, {"snapshot", "save"}, {"quorum", "recover"}, {"status", "--quorum", "-o", "yaml"}} {
		r := ctl(t.Context(), c, "n1", bad...)
		require.Equal(t, zmy.ExitUsage, r.exit, "%v", bad)
		require.True(t, strings.HasPrefix(r.stderr, "error: "), r.stderr)
	}

	audit := c.Audit()
	require.NotEmpty(t, audit)
	last := audit[len(audit)-1]
	require.Equal(t, "n1", last.Node)
	require.Equal(t, []string{"status", "--quorum", "-o", "yaml"}, last.Args)
	require.Equal(t, zmy.ExitUsage, last.Exit)
}

func TestPartitionClosesMinorityPeerPorts(t *testing.T) {
	c := startCluster(t, 5, 200)
	require.NoError(t, c.Fault([]string{"partition", "n1,n2,n3/n4,n5"}))
	waitFor(t, 5*time.Second, "n4 leads the minority", func() bool {
		return ctlJSON[zmy.RaftState](t, c, "n4", "raft", "state").RaftState == zmy.StateLeader
	})
	for _, id := range []string{"n1", "n2", "n3"} {
		require.True(t, tcpOpen(c.endpoint(id).PeerAddr), id)
	}
	for _, id := range []string{"n4", "n5"} {
		require.False(t, tcpOpen(c.endpoint(id).PeerAddr), "%s's peer port refuses the responder", id)
		st := ctlJSON[zmy.QuorumStatus](t, c, id, "status", "--quorum")
		require.Equal(t, zmy.QuorumLost, st.Quorum, id)
		require.Equal(t, "n4", st.LeaderID)
		// /metrics and the admin API stay reachable: the partition is between nodes.
		require.Equal(t, 0.0, scrape(t, c.endpoint(id).MetricsURL)[zmy.MetricQuorum].get(""), id)
	}
	require.Equal(t, zmy.StateLeader, ctlJSON[zmy.RaftState](t, c, "n1", "raft", "state").RaftState)
	waitFor(t, 5*time.Second, "shard 1 diverges", func() bool {
		a := scrape(t, c.endpoint("n1").MetricsURL)[zmy.MetricShardLastApplied].get("shard=1")
		b := scrape(t, c.endpoint("n5").MetricsURL)[zmy.MetricShardLastApplied].get("shard=1")
		return a != b
	})

	require.ErrorContains(t, c.Fault([]string{"partition", "n1,n2/n3,n4"}), "missing n5")
	require.ErrorContains(t, c.Fault([]string{"partition", "n1,n2,n3/n3,n4,n5"}), "listed twice")

	require.NoError(t, c.Fault([]string{"heal"}))
	for _, id := range []string{"n4", "n5"} {
		require.True(t, tcpOpen(c.endpoint(id).PeerAddr), "%s's peer port reopens on heal", id)
	}
}

// TestRunbookThroughCtl runs the SOP the way the responder does, in parallel per step, and
// then a wrong one, through the admin API.
func TestRunbookThroughCtl(t *testing.T) {
	c := startCluster(t, 5, 200)
	ids := []string{"n1", "n2", "n3", "n4", "n5"}
	all := func(args ...string) {
		t.Helper()
		var wg sync.WaitGroup
		res := make([]ctlResult, len(ids))
		for i, id := range ids {
			wg.Go(func() { res[i] = ctl(t.Context(), c, id, args...) })
		}
		wg.Wait()
		for i, r := range res {
			require.Equal(t, 0, r.exit, "%s %v: %s", ids[i], args, r.stderr)
		}
	}
	require.NoError(t, c.Fault([]string{"partition", "n1,n2,n3/n4,n5"}))
	waitFor(t, 5*time.Second, "minority writes", func() bool {
		return scrape(t, c.endpoint("n4").MetricsURL)[zmy.MetricWritesTotal].get("result=accepted") > 10
	})
	t.Setenv(zmy.ActorEnv, "r1/inc-000001/j1") // ctl forwards its caller's ZMY_ACTOR
	all("raft", "suspend", "--force")
	for _, id := range ids {
		st := ctlJSON[zmy.RaftState](t, c, id, "raft", "state")
		require.Equal(t, zmy.StateSuspended, st.RaftState)
		require.Equal(t, "r1/inc-000001/j1", st.SuspendedBy)
	}
	a := c.Audit()
	require.Equal(t, "r1/inc-000001/j1", a[len(a)-1].Actor, "the audit names the actor")
	waitFor(t, 5*time.Second, "writes rejected", func() bool {
		return scrape(t, c.endpoint("n5").MetricsURL)[zmy.MetricWritesTotal].get("result=rejected") > 0
	})
	all("snapshot", "save", "--tag", "pre-recover-42")
	r := ctl(t.Context(), c, "n2", "quorum", "recover", "--auto")
	require.Equal(t, zmy.ExitNotConverged, r.exit, r.stderr)
	require.NoError(t, c.Heal())
	rec := ctlJSON[zmy.RecoverResult](t, c, "n5", "quorum", "recover", "--auto")
	require.Equal(t, []string{"n1", "n2", "n3"}, rec.Majority)
	require.Positive(t, rec.Discarded)
	last := ctlJSON[zmy.RaftState](t, c, "n1", "raft", "state").LastRecover
	require.NotNil(t, last, "every node reports the last recover")
	require.Equal(t, rec, last.RecoverResult)
	require.Equal(t, "r1/inc-000001/j1", last.Actor)
	all("raft", "resume")
	waitFor(t, 5*time.Second, "one leader, equal indexes, writes continue", func() bool {
		leaders := map[string]bool{}
		var first map[string]float64
		for _, id := range ids {
			f := scrape(t, c.endpoint(id).MetricsURL)
			for k := range f[zmy.MetricLeaderInfo].values {
				leaders[k] = true
			}
			if first == nil {
				first = f[zmy.MetricShardLastApplied].values
			} else if !equalMaps(first, f[zmy.MetricShardLastApplied].values) {
				return false
			}
		}
		return len(leaders) == 1 && first["shard=1"] > 0
	})
	require.Empty(t, c.Invariants(), "the right runbook breaks no invariant")

	// A lying node and a resume in the next episode before any recover.
	require.NoError(t, c.Fault([]string{"partition", "n1,n2,n3/n4,n5"}))
	all("raft", "suspend", "--force")
	require.NoError(t, c.Fault([]string{"force-write", "n2"}))
	r = ctl(t.Context(), c, "n4", "raft", "resume")
	require.Equal(t, 0, r.exit)
	kinds := map[string]string{}
	for _, v := range c.Invariants() {
		kinds[v.Kind] = v.Node
	}
	require.Equal(t, map[string]string{KindWriteAfterSuspend: "n2", KindResumeBeforeRecover: "n4"}, kinds)
}

func equalMaps(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestKillAndRestart(t *testing.T) {
	c := startCluster(t, 5, 100)
	ep := c.endpoint("n1")
	require.NoError(t, c.Kill("n1"))
	r := ctl(t.Context(), c, "n1", "status", "--quorum")
	require.Equal(t, zmy.ExitUnreachable, r.exit)
	require.Contains(t, r.stderr, "error: node unreachable")
	for _, addr := range []string{ep.HTTPAddr, ep.PeerAddr, ep.GRPCAddr} {
		require.False(t, tcpOpen(addr), "killed node's port %s is closed", addr)
	}
	waitFor(t, 5*time.Second, "a new leader among the four", func() bool {
		st := ctlJSON[zmy.QuorumStatus](t, c, "n3", "status", "--quorum")
		return st.Quorum == zmy.QuorumOK && st.LeaderID == "n2" && len(st.Members) == 4
	})
	time.Sleep(200 * time.Millisecond) // let the others write without n1
	require.NoError(t, c.Restart("n1"))
	for _, addr := range []string{ep.HTTPAddr, ep.PeerAddr, ep.GRPCAddr} {
		require.True(t, tcpOpen(addr), "restarted node reopens %s", addr)
	}
	st := ctlJSON[zmy.RaftState](t, c, "n1", "raft", "state")
	require.Equal(t, zmy.RaftState{Node: "n1", RaftState: zmy.StateFollower, Term: 2, LeaderID: "n2"}, st)
	// Writes go on while the two nodes are scraped one after the other, so equal indexes would
	// depend on no write landing in between. Caught up means: n1, read after n2, has every
	// shard at least where n2 had it, and no shard n2 lacks.
	waitFor(t, 30*time.Second, "n1 caught up with n2", func() bool {
		leader := scrape(t, c.endpoint("n2").MetricsURL)[zmy.MetricShardLastApplied].values
		restarted := scrape(t, ep.MetricsURL)[zmy.MetricShardLastApplied].values
		if len(leader) == 0 || len(restarted) != len(leader) {
			return false
		}
		for shard, v := range leader {
			if w, ok := restarted[shard]; !ok || w < v {
				return false
			}
		}
		return true
	})
}

func TestFirewall(t *testing.T) {
	c := startCluster(t, 5, 100)
	require.NoError(t, c.Fault([]string{"firewall", "n4", "on"}))
	require.False(t, tcpOpen(c.endpoint("n4").PeerAddr), "the rule refuses the responder too")
	nc := ctlJSON[zmy.Netcheck](t, c, "n4", "debug", "netcheck", "--full")
	require.Equal(t, 1.0, nc.PartitionScore)
	for _, p := range nc.Peers {
		require.True(t, p.FirewallBlocked && !p.Reachable, "%+v", p)
	}
	nc = ctlJSON[zmy.Netcheck](t, c, "n1", "debug", "netcheck", "--full")
	require.Equal(t, 1.0, nc.PartitionScore, "no node of n1's side reaches n4")
	for _, p := range nc.Peers {
		require.Equal(t, p.Peer == "n4", p.FirewallBlocked, "%+v", p)
		require.Equal(t, p.Peer != "n4", p.Reachable, "%+v", p)
	}
	waitFor(t, 5*time.Second, "n4 leads itself", func() bool {
		st := ctlJSON[zmy.QuorumStatus](t, c, "n4", "status", "--quorum")
		return st.Quorum == zmy.QuorumLost && st.LeaderID == "n4"
	})
	require.ErrorContains(t, c.Fault([]string{"firewall", "n4", "maybe"}), "on or off")
	require.NoError(t, c.Fault([]string{"firewall", "n4", "off"}))
	require.True(t, tcpOpen(c.endpoint("n4").PeerAddr))
}

func TestClockSkew(t *testing.T) {
	c := startCluster(t, 3, 0)
	require.NoError(t, c.Fault([]string{"clock", "n3", "+800ms"}))
	got := scrape(t, c.endpoint("n3").MetricsURL)[zmy.MetricClock].get("")
	require.InDelta(t, float64(time.Now().UnixNano())/1e9+0.8, got, 0.2)
	require.NoError(t, c.Fault([]string{"clock", "n3", "-1s"}))
	got = scrape(t, c.endpoint("n3").MetricsURL)[zmy.MetricClock].get("")
	require.InDelta(t, float64(time.Now().UnixNano())/1e9-1, got, 0.2)
	require.NoError(t, c.Fault([]string{"clock", "n3", "0"}))
	got = scrape(t, c.endpoint("n3").MetricsURL)[zmy.MetricClock].get("")
	require.InDelta(t, float64(time.Now().UnixNano())/1e9, got, 0.2)
	require.Error(t, c.Fault([]string{"clock", "n3", "soon"}))
}

func TestCtlFaults(t *testing.T) {
	c := startCluster(t, 3, 0)
	require.NoError(t, c.Fault([]string{"ctl", "n2", "fail"}))
	r := ctl(t.Context(), c, "n2", "raft", "state")
	require.Equal(t, zmy.ExitError, r.exit)
	require.Equal(t, "error: injected failure\n", r.stderr)

	require.NoError(t, c.Fault([]string{"ctl", "n2", "hang"}))
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	start := time.Now()
	r = ctl(ctx, c, "n2", "raft", "suspend", "--force")
	cancel()
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "a hung node does not answer")
	require.NotEqual(t, 0, r.exit)
	waitFor(t, 2*time.Second, "the hang is audited", func() bool {
		a := c.Audit()
		return len(a) > 0 && a[len(a)-1].Exit == ExitNoAnswer
	})

	require.NoError(t, c.Fault([]string{"ctl", "n2", "ok"}))
	require.NoError(t, c.Fault([]string{"slow", "n2", "300ms"}))
	start = time.Now()
	r = ctl(t.Context(), c, "n2", "raft", "state")
	require.Equal(t, 0, r.exit, r.stderr)
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	require.NoError(t, c.Fault([]string{"slow", "n2", "0s"}))

	// Slowness of one command only: other commands answer at once. The command waiting is
	// listed in flight, and a caller that goes away cancels it: it is never applied.
	require.NoError(t, c.Fault([]string{"slow", "n2", "1m", "raft", "suspend"}))
	r = ctl(t.Context(), c, "n2", "raft", "state")
	require.Equal(t, 0, r.exit, r.stderr)
	// The caller is a plain HTTP client here, so that cancelling it closes its connection as a
	// killed zmyctl's would (the in-process ctl reads without watching its context).
	sctx, scancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		body, _ := json.Marshal(execRequest{Args: []string{"raft", "suspend", "--force"}})
		req, err := http.NewRequestWithContext(sctx, http.MethodPost, c.endpoint("n2").Admin+"/admin/v1/exec", bytes.NewReader(body))
		if err == nil {
			var resp *http.Response
			if resp, err = http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
		done <- err
	}()
	waitInFlight(t, c, "n2", "raft suspend")
	scancel()
	<-done
	requireAbandonedSuspend(t, c, "n2")
	require.NoError(t, c.Fault([]string{"slow", "n2", "0s"}))
	require.ErrorContains(t, c.Fault([]string{"ctl", "n2", "sometimes"}), "ok, fail or hang")
	require.ErrorContains(t, c.Fault([]string{"explode"}), "unknown fault")
}

// waitInFlight waits until node lists the command words in flight.
func waitInFlight(t *testing.T, c *Cluster, node, words string) {
	t.Helper()
	waitFor(t, 5*time.Second, words+" in flight on "+node, func() bool {
		for _, n := range c.Nodes() {
			if n.ID == node && slices.Contains(n.InFlight, words) {
				return true
			}
		}
		return false
	})
}

// requireAbandonedSuspend checks that a suspend whose caller went away was audited without an
// answer and never applied.
func requireAbandonedSuspend(t *testing.T, c *Cluster, node string) {
	t.Helper()
	waitFor(t, 5*time.Second, "the abandoned suspend is audited", func() bool {
		a := c.Audit()
		return a[len(a)-1].Exit == ExitNoAnswer && slices.Contains(a[len(a)-1].Args, "suspend")
	})
	for _, n := range c.Nodes() {
		if n.ID == node {
			require.NotEqual(t, "suspended", n.Role, "an abandoned command is never applied")
			require.Empty(t, n.InFlight)
		}
	}
}

func TestLoadPauses(t *testing.T) {
	c := startCluster(t, 3, 500)
	waitFor(t, 5*time.Second, "writes", func() bool { return c.acceptedTotal() > 20 })
	require.NoError(t, c.Fault([]string{"load", "0"}))
	time.Sleep(2 * tick)
	before := c.acceptedTotal()
	time.Sleep(5 * tick)
	require.Equal(t, before, c.acceptedTotal(), "load 0 pauses writes")
}
