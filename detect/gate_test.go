package detect

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/testenv"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

func TestGateReading(t *testing.T) {
	nc := func(node string, score float64) Result {
		return Result{Probe: ProbeNetcheck, Node: node, Status: StatusOK, Data: &zmy.Netcheck{Node: node, PartitionScore: score}}
	}
	etcd := func(missing ...string) Result {
		r := Result{Probe: ProbeEtcd, Status: StatusOK, Data: &EtcdReading{
			Endpoints: []EndpointHealth{{Endpoint: "e1", Healthy: true}}, Missing: missing}}
		if len(missing) > 0 {
			r.Status, r.Reason = StatusFail, "no lease key for "+strings.Join(missing, ", ")
		}
		return r
	}
	nodes := []string{"n1", "n2", "n3"}
	for _, tc := range []struct {
		name      string
		results   []Result
		etcd      bool
		converged float64
		open      bool
		want      incident.Gate
		reason    string
	}{
		{name: "converged, no etcd declared", results: []Result{nc("n1", 0), nc("n2", 0), nc("n3", 0)}, open: true,
			want: incident.Gate{NetworkConverged: true, EtcdHealthy: true}},
		{name: "still partitioned", results: []Result{nc("n1", 0.5), nc("n2", 0.5), nc("n3", 1)},
			want:   incident.Gate{EtcdHealthy: true, PartitionScore: 1},
			reason: "network not converged: partition_score n1=0.50, n2=0.50, n3=1.00 above 0.00"},
		{name: "a bound above zero tolerates a flaky link", results: []Result{nc("n1", 0.5), nc("n2", 0), nc("n3", 0)},
			converged: 0.5, open: true, want: incident.Gate{NetworkConverged: true, EtcdHealthy: true, PartitionScore: 0.5}},
		{name: "a silent node is not converged", results: []Result{nc("n1", 0), nc("n2", 0),
			{Probe: ProbeNetcheck, Node: "n3", Status: StatusError, Reason: "netcheck n3: timed out"}},
			want: incident.Gate{EtcdHealthy: true}, reason: "netcheck did not answer on n3"},
		{name: "etcd healthy", results: []Result{nc("n1", 0), nc("n2", 0), nc("n3", 0), etcd()}, etcd: true, open: true,
			want: incident.Gate{NetworkConverged: true, EtcdChecked: true, EtcdHealthy: true}},
		{name: "etcd lease of a node expired", results: []Result{nc("n1", 0), nc("n2", 0), nc("n3", 0), etcd("n2")}, etcd: true,
			want: incident.Gate{NetworkConverged: true, EtcdChecked: true}, reason: "etcd: no lease key for n2"},
		{name: "etcd declared but unanswered", results: []Result{nc("n1", 0), nc("n2", 0), nc("n3", 0),
			{Probe: ProbeEtcd, Status: StatusError, Reason: "unhealthy etcd endpoints: e1: connect refused"}}, etcd: true,
			want: incident.Gate{NetworkConverged: true, EtcdChecked: true}, reason: "etcd not checked: unhealthy etcd endpoints"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := gate(tc.results, nodes, tc.etcd, tc.converged)
			require.Equal(t, tc.open, g.Open(), g.Reason)
			require.Equal(t, tc.want.NetworkConverged, g.NetworkConverged)
			require.Equal(t, tc.want.EtcdChecked, g.EtcdChecked)
			require.Equal(t, tc.want.EtcdHealthy, g.EtcdHealthy)
			require.Equal(t, tc.want.PartitionScore, g.PartitionScore)
			if tc.open {
				require.Empty(t, g.Reason)
			} else {
				require.Contains(t, g.Reason, tc.reason)
			}
			require.Len(t, g.Evidence, len(tc.results))
		})
	}
}

// The gate against the simulator with real node leases in an embedded etcd: closed while
// partitioned, open once healed, closed again when a killed node's 2s lease expires.
func TestScenarioRecoveryGate(t *testing.T) {
	ep := testenv.StartEtcd(t)
	s := startSim(t, 5, "--etcd-endpoints", ep, "--etcd-lease-ttl", "2s")
	p, _ := s.prober()
	require.NotNil(t, s.cfg.Cluster(s.name).Etcd, "the generated config declares the cluster's etcd")

	gateUntil := func(want func(incident.Gate) bool) incident.Gate {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			g, err := p.RecoveryGate(t.Context(), s.name)
			require.NoError(t, err)
			if want(g) || time.Now().After(deadline) {
				return g
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	g := gateUntil(incident.Gate.Open)
	require.True(t, g.Open(), g.Reason)
	require.True(t, g.EtcdChecked)

	s.fault("partition", "n1,n2,n3/n4,n5")
	g = gateUntil(func(g incident.Gate) bool { return !g.NetworkConverged })
	require.False(t, g.Open())
	require.Equal(t, 1.0, g.PartitionScore, "a clean split")
	require.Contains(t, g.Reason, "network not converged")

	s.fault("heal")
	g = gateUntil(incident.Gate.Open)
	require.True(t, g.Open(), g.Reason)

	s.fault("kill", "n2")
	g = gateUntil(func(g incident.Gate) bool { return !g.EtcdHealthy })
	require.False(t, g.EtcdHealthy, g.Reason)
	require.Contains(t, g.Reason, "no lease key for n2")
	require.Contains(t, g.Reason, "netcheck did not answer on n2")
	s.requireOnlyReads()
}
