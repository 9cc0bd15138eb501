package detect

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

// confirmUntil confirms until want accepts the verdict or 15s pass, and returns the last verdict:
// the simulator needs a moment after a fault to elect leaders and let writes diverge.
func confirmUntil(t *testing.T, p *Prober, cluster string, want func(*incident.Verdict) bool) *incident.Verdict {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		v, err := p.Confirm(t.Context(), cluster)
		require.NoError(t, err)
		t.Logf("%s healthy=%t: %s", v.Kind, v.Healthy, v.Reason)
		if want(v) || time.Now().After(deadline) {
			return v
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func conds(control, data, network bool) map[incident.Condition]bool {
	return map[incident.Condition]bool{incident.CondControl: control, incident.CondData: data, incident.CondNetwork: network}
}

func hasConds(c map[incident.Condition]bool) func(*incident.Verdict) bool {
	return func(v *incident.Verdict) bool {
		return v.Conditions[incident.CondControl] == c[incident.CondControl] &&
			v.Conditions[incident.CondData] == c[incident.CondData] &&
			v.Conditions[incident.CondNetwork] == c[incident.CondNetwork]
	}
}

// find returns the evidence of probe on node.
func find(t *testing.T, v *incident.Verdict, node, probe string) incident.Evidence {
	t.Helper()
	i := slices.IndexFunc(v.Evidence, func(e incident.Evidence) bool { return e.Node == node && e.Probe == probe })
	require.GreaterOrEqual(t, i, 0, "evidence %s/%s in %v", node, probe, v.Evidence)
	return v.Evidence[i]
}

func TestScenarioHealthy(t *testing.T) {
	s := startSim(t, 5)
	p, reg := s.prober()
	v := confirmUntil(t, p, s.name, func(v *incident.Verdict) bool { return v.Healthy })

	require.Equal(t, incident.VerdictNotConfirmed, v.Kind, v.Reason)
	require.True(t, v.Healthy, v.Reason)
	require.False(t, v.Conditions[incident.CondControl])
	require.False(t, v.Conditions[incident.CondNetwork])
	require.Contains(t, v.Reason, "control: QUORUM_OK with one leader")
	require.Equal(t, [][]string{{"n1", "n2", "n3", "n4", "n5"}}, v.Groups)
	require.Equal(t, 2*time.Second, v.Threshold, "loopback RTTs keep the threshold at its minimum")
	for _, n := range []string{"n1", "n2", "n3", "n4", "n5"} {
		for _, probe := range []string{ProbeControl, ProbeData, ProbeTCP, ProbeNetcheck, ProbeClock, ProbeHTTP, ProbeGRPC} {
			e := find(t, v, n, probe)
			require.True(t, e.OK, "%s/%s: %s", n, probe, e.Error)
			require.Empty(t, e.Error, "%s/%s", n, probe)
		}
		require.True(t, strings.HasPrefix(find(t, v, n, ProbeControl).Value, "QUORUM_OK"))
		require.NotEmpty(t, find(t, v, n, ProbeControl).Raw, "raw zmyctl output is kept")
	}
	require.Less(t, v.Duration, v.Threshold, "a healthy round finishes inside its budget")

	// Metrics: every probe counted, the verdict counted, the threshold exported.
	require.GreaterOrEqual(t, testutil.ToFloat64(p.metrics.probeResults.WithLabelValues(ProbeControl, "ok")), 5.0)
	require.GreaterOrEqual(t, testutil.ToFloat64(p.metrics.verdicts.WithLabelValues("not_confirmed")), 1.0)
	require.Equal(t, 2.0, testutil.ToFloat64(p.metrics.threshold.WithLabelValues(s.name)))
	n, err := testutil.GatherAndCount(reg, "zmy_responder_clock_offset_seconds")
	require.NoError(t, err)
	require.Equal(t, 5, n)
	s.requireOnlyReads()
}

func TestScenarioPartition3v2(t *testing.T) {
	s := startSim(t, 5, "--write-rate", "200")
	p, _ := s.prober()
	s.fault("partition", "n1,n2,n3/n4,n5")
	v := confirmUntil(t, p, s.name, func(v *incident.Verdict) bool {
		return v.Kind == incident.VerdictConfirmed && strings.Contains(v.Reason, "QUORUM_LOST on n4, n5;")
	})

	require.Equal(t, incident.VerdictConfirmed, v.Kind, v.Reason)
	require.Equal(t, conds(true, true, true), v.Conditions)
	require.Equal(t, [][]string{{"n1", "n2", "n3"}, {"n4", "n5"}}, v.Groups)
	require.Equal(t, 1.0, v.PartitionScore, "a clean split scores 1 on every node")
	require.Equal(t, RootCauseNetwork, v.RootCause)
	require.Equal(t, SOPNetwork, v.SOP, "partition_score %.2f is over 0.8", v.PartitionScore)
	// The evidence that decided it:
	require.Contains(t, v.Reason, "QUORUM_LOST on n4, n5")
	e := find(t, v, "n4", ProbeControl)
	require.True(t, strings.HasPrefix(e.Value, "QUORUM_LOST"), e.Value)
	require.Equal(t, []incident.Condition{incident.CondControl}, e.Supports)
	e = find(t, v, "n4", ProbeTCP)
	require.False(t, e.OK && strings.HasPrefix(e.Value, "connected"), "the responder cannot open n4's peer port: %s", e.Value)
	require.Contains(t, e.Error, "refused")
	require.Contains(t, v.Reason, "peer port unreachable from the responder: responder→n4 refused, responder→n5 refused")
	require.Contains(t, v.Reason, "data: shard")
	require.Contains(t, find(t, v, "n1", ProbeNetcheck).Error, "peers unreachable: n4, n5")
	s.requireOnlyReads()
}

func TestScenarioSevenNodes3v2v2(t *testing.T) {
	s := startSim(t, 7, "--write-rate", "200")
	p, _ := s.prober()
	s.fault("partition", "n1,n2,n3/n4,n5/n6,n7")
	// Wait out the elections: right after the split the minorities still name the old leader.
	v := confirmUntil(t, p, s.name, func(v *incident.Verdict) bool {
		return v.Kind == incident.VerdictConfirmed && strings.Contains(v.Reason, "leader_ids differ: n1 (n1, n2, n3), n4 (n4, n5), n6 (n6, n7)")
	})

	require.Equal(t, incident.VerdictConfirmed, v.Kind, v.Reason)
	require.Equal(t, [][]string{{"n1", "n2", "n3"}, {"n4", "n5"}, {"n6", "n7"}}, v.Groups)
	require.Greater(t, v.PartitionScore, 0.8, "a clean 3-way split")
	require.Equal(t, RootCauseNetwork, v.RootCause)
	require.Equal(t, SOPNetwork, v.SOP)
	require.Contains(t, v.Reason, "QUORUM_LOST on n1, n2, n3, n4, n5, n6, n7", "no group holds 4 of 7")
	s.requireOnlyReads()
}

func TestScenarioFirewallIsNotASplitBrain(t *testing.T) {
	s := startSim(t, 5, "--write-rate", "200")
	p, _ := s.prober()
	s.fault("firewall", "n4", "on")
	v := confirmUntil(t, p, s.name, func(v *incident.Verdict) bool {
		return v.Conditions[incident.CondControl] && v.Conditions[incident.CondData]
	})

	require.Equal(t, incident.VerdictNotConfirmed, v.Kind, v.Reason)
	require.Equal(t, conds(true, true, false), v.Conditions, v.Reason)
	require.Contains(t, v.Reason, "network: unreachability explained by a firewall rule on n4 (deliberate block)")
	require.Contains(t, find(t, v, "n4", ProbeNetcheck).Value, "firewall blocks peer port to n1, n2, n3, n5")
	require.Contains(t, find(t, v, "n4", ProbeTCP).Error, "refused")
	s.requireOnlyReads()
}

func TestScenarioKilledNode(t *testing.T) {
	s := startSim(t, 5)
	p, _ := s.prober(func(c *config.Config) { c.Detection.NodeBreaker.Cooldown = model.Duration(time.Second) })
	s.fault("kill", "n2")
	v := confirmUntil(t, p, s.name, hasConds(conds(false, false, true)))

	require.Equal(t, incident.VerdictNotConfirmed, v.Kind, v.Reason)
	require.Equal(t, conds(false, false, true), v.Conditions, v.Reason)
	require.Contains(t, v.Reason, "control: QUORUM_OK with one leader")
	require.Contains(t, v.Reason, "4 of 5 nodes answered")
	require.False(t, v.Healthy)
	require.Zero(t, v.PartitionScore, "a dead node is no network cut")
	require.Equal(t, SOPQuorumDown, v.SOP)
	e := find(t, v, "n2", ProbeControl)
	require.False(t, e.OK)
	require.NotEmpty(t, e.Error)

	// The dead node keeps failing: its breaker opens and later rounds skip it, saying so.
	for range 3 {
		_, err := p.Confirm(t.Context(), s.name)
		require.NoError(t, err)
	}
	v, err := p.Confirm(t.Context(), s.name)
	require.NoError(t, err)
	require.Equal(t, incident.VerdictNotConfirmed, v.Kind, v.Reason)
	e = find(t, v, "n2", ProbeControl)
	require.True(t, e.Skipped, "%+v", e)
	require.Contains(t, e.Error, "node breaker open")
	require.False(t, find(t, v, "n1", ProbeControl).Skipped)

	// After the cooldown one round tries n2 again; once it is back it answers and stays probed.
	s.fault("restart", "n2")
	time.Sleep(1100 * time.Millisecond)
	v = confirmUntil(t, p, s.name, func(v *incident.Verdict) bool { return v.Healthy })
	require.True(t, v.Healthy, v.Reason)
	require.False(t, find(t, v, "n2", ProbeControl).Skipped)
	s.requireOnlyReads()
}

func TestScenarioLeadersDifferNoDivergence(t *testing.T) {
	s := startSim(t, 5)
	p, _ := s.prober()
	s.fault("load", "0")
	time.Sleep(300 * time.Millisecond) // let in-flight writes replicate before splitting
	s.fault("partition", "n1,n2,n3/n4,n5")
	// n5 learns of n4's election on n4's first heartbeat: until then it still names n1, so
	// wait for the settled split rather than the first sign of it.
	v := confirmUntil(t, p, s.name, func(v *incident.Verdict) bool {
		return hasConds(conds(true, false, true))(v) && strings.Contains(v.Reason, "leader_ids differ: n1 (n1, n2, n3), n4 (n4, n5)")
	})

	require.Equal(t, incident.VerdictNotConfirmed, v.Kind, v.Reason)
	require.Equal(t, conds(true, false, true), v.Conditions, v.Reason)
	require.Contains(t, v.Reason, "not a split-brain: data: 4 shards agree within tolerance 2")
	require.Contains(t, v.Reason, "holding nonetheless: control: QUORUM_LOST on n4, n5; leader_ids differ: n1 (n1, n2, n3), n4 (n4, n5)")
	s.requireOnlyReads()
}

func TestScenarioClockSkewTripsTheFuse(t *testing.T) {
	s := startSim(t, 5)
	p, reg := s.prober()
	confirmUntil(t, p, s.name, func(v *incident.Verdict) bool { return v.Healthy })
	s.fault("clock", "n3", "+800ms")

	for i := 1; i <= 3; i++ {
		v, err := p.Confirm(t.Context(), s.name)
		require.NoError(t, err)
		e := find(t, v, "n3", ProbeClock)
		require.Contains(t, e.Value, "offset=+", "reading %d", i)
		require.Contains(t, e.Value, "breach "+string(rune('0'+i))+"/3", "reading %d", i)
		require.Equal(t, []incident.Condition{incident.CondClock}, e.Supports)
		if i < 3 {
			require.Equal(t, incident.VerdictNotConfirmed, v.Kind, "reading %d: %s", i, v.Reason)
			require.False(t, v.ClockFuse)
			continue
		}
		require.Equal(t, incident.VerdictInconclusive, v.Kind, v.Reason)
		require.True(t, v.ClockFuse)
		require.Contains(t, v.Reason, "clock fuse tripped (n3: offset +")
	}
	require.Equal(t, 1.0, testutil.ToFloat64(p.metrics.fuseTripped.WithLabelValues(s.name)))
	// Under two busy cores a scrape can take tens of milliseconds; the half-RTT correction keeps
	// the reading within that of the injected skew.
	require.InDelta(t, 0.8, testutil.ToFloat64(p.metrics.clockOffset.WithLabelValues(s.name, "n3")), 0.2)
	require.InDelta(t, 0.0, testutil.ToFloat64(p.metrics.clockOffset.WithLabelValues(s.name, "n1")), 0.2)

	s.fault("clock", "n3", "0s")
	v, err := p.Confirm(t.Context(), s.name)
	require.NoError(t, err)
	require.False(t, v.ClockFuse, "clean readings reset the fuse: %s", v.Reason)
	require.Equal(t, incident.VerdictNotConfirmed, v.Kind, v.Reason)
	require.Equal(t, 0.0, testutil.ToFloat64(p.metrics.fuseTripped.WithLabelValues(s.name)))
	n, err := testutil.GatherAndCount(reg, "zmy_responder_clock_fuse_tripped")
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

func TestScenarioHungZmyctl(t *testing.T) {
	s := startSim(t, 5)
	p, _ := s.prober()
	confirmUntil(t, p, s.name, func(v *incident.Verdict) bool { return v.Healthy })
	s.fault("ctl", "n3", "hang")

	start := time.Now()
	v, err := p.Confirm(t.Context(), s.name)
	took := time.Since(start)
	require.NoError(t, err)
	require.LessOrEqual(t, took, v.Threshold, "the verdict comes within the budget")
	require.Greater(t, took, v.Threshold/2, "n3's zmyctl was waited for, not skipped")
	require.Equal(t, incident.VerdictNotConfirmed, v.Kind, v.Reason)
	require.Contains(t, v.Reason, "4 of 5 nodes answered")
	e := find(t, v, "n3", ProbeControl)
	require.False(t, e.OK)
	require.Contains(t, e.Error, "status n3")
	require.True(t, find(t, v, "n3", ProbeData).OK, "n3's /metrics still answers")
	require.Less(t, find(t, v, "n1", ProbeControl).Duration, e.Duration/2, "healthy nodes were not held up")

	// A caller's deadline earlier than the budget wins.
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	start = time.Now()
	v, err = p.Confirm(ctx, s.name)
	took = time.Since(start)
	require.NoError(t, err)
	require.Less(t, took, 800*time.Millisecond)
	require.Equal(t, incident.VerdictNotConfirmed, v.Kind, v.Reason)
	s.requireOnlyReads()
}
