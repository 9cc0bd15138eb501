package rules

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/sim"
	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// liveRig is a simulated cluster scraped by a real Prometheus that evaluates the shipped rules.
type liveRig struct {
	sim  *sim.Cluster
	prom *testenv.Prometheus
}

// startLive starts a 5-node simulated cluster "live" and Debian's Prometheus with the shipped
// rule files, scraping the nodes as job "zmy" (file_sd with the cluster and node labels, as
// deploy/prometheus.yml does) every scrape and evaluating every eval.
func startLive(t testing.TB, scrape, eval time.Duration) *liveRig {
	t.Helper()
	testenv.Binary(t, "prometheus")
	c, err := sim.Start(t.Context(), sim.Options{Cluster: "live", Nodes: 5, WriteRate: 50})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	dir := t.TempDir()
	sd, err := c.PrometheusSD()
	require.NoError(t, err)
	sdFile := filepath.Join(dir, "zmy-live.json")
	require.NoError(t, os.WriteFile(sdFile, sd, 0o644))
	names, err := Names()
	require.NoError(t, err)
	var files string
	for _, n := range names {
		abs, err := filepath.Abs(n)
		require.NoError(t, err)
		files += fmt.Sprintf("  - %q\n", abs)
	}
	timeout := min(scrape, 10*time.Second) * 9 / 10
	cfg := fmt.Sprintf(`global:
  scrape_interval: %s
  evaluation_interval: %s
  scrape_timeout: %s
rule_files:
%sscrape_configs:
  - job_name: zmy
    file_sd_configs:
      - files: [%q]
`, promDuration(scrape), promDuration(eval), promDuration(timeout), files, sdFile)
	r := &liveRig{sim: c, prom: testenv.StartPrometheus(t, cfg)}
	r.waitCount(t, `up{job="zmy"} == 1`, 5, 30*time.Second+3*scrape, "first scrapes of the 5 nodes")
	return r
}

func promDuration(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }

// count is the number of series expr returns now.
func (r *liveRig) count(t testing.TB, expr string) int {
	t.Helper()
	v, err := r.prom.Query(t.Context(), expr)
	require.NoError(t, err)
	return len(v)
}

// waitCount polls expr until it returns want series, within d.
func (r *liveRig) waitCount(t testing.TB, expr string, want int, d time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		n := r.count(t, expr)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s returned %d series after %s, want %d", what, expr, n, d, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

const (
	partitionFiring = `ALERTS{alertname="ZMY_Network_Partition",alertstate="firing",cluster="live"}`
	partitionAny    = `ALERTS{alertname="ZMY_Network_Partition",cluster="live"}`
)

// The SOP's root-cause alert fires through a real Prometheus during a clean 3|2 split, clears
// once the network heals, and stays silent when a node merely dies.
func TestNetworkPartitionAlertThroughPrometheus(t *testing.T) {
	r := startLive(t, time.Second, time.Second)

	// One dead node: every other node still scores 0, so by the time ZMY_Node_Down fires (same
	// `for`, same evaluations) ZMY_Network_Partition has not even been pending.
	require.NoError(t, r.sim.Kill("n2"))
	r.waitCount(t, `ALERTS{alertname="ZMY_Node_Down",alertstate="firing",node="n2"}`, 1, time.Minute, "ZMY_Node_Down for n2")
	require.Zero(t, r.count(t, partitionAny), "a dead node is not a partition")
	require.Zero(t, r.count(t, `zmy_partition_score{job="zmy"} > 0`), "a dead node scores 0 everywhere")
	require.NoError(t, r.sim.Restart("n2"))
	r.waitCount(t, `up{job="zmy"} == 1`, 5, time.Minute, "n2 scraped again")

	require.NoError(t, r.sim.Partition([][]string{{"n1", "n2", "n3"}, {"n4", "n5"}}))
	r.waitCount(t, `zmy_partition_score{job="zmy"} > 0.8`, 5, time.Minute, "every node scoring the 3|2 split above 0.8")
	r.waitCount(t, partitionFiring, 1, time.Minute, "ZMY_Network_Partition firing during the 3|2 split")

	require.NoError(t, r.sim.Heal())
	r.waitCount(t, `zmy_partition_score{job="zmy"} > 0`, 0, time.Minute, "every node scoring the healed network 0")
	r.waitCount(t, partitionAny, 0, time.Minute, "ZMY_Network_Partition cleared after heal")
}

// BenchmarkFiringTime measures, through a real Prometheus evaluating the shipped rules, how long
// after a 3|2 partition ZMY_Quorum_Down and ZMY_Network_Partition fire, and how long after the
// heal they are gone, for the scrape and evaluation intervals of each shipped configuration:
// 1s (internal/stack: `make demo`, `make e2e`), 5s (deploy/prometheus.yml) and 15s (the
// ServiceMonitor's interval, for a ZMY PodMonitor scraped alike, and the rule evaluation at the
// same 15s). Each sample starts at a random phase of the scrape and evaluation clocks.
// `make bench-firing`; figures in BENCHMARKS.md.
func BenchmarkFiringTime(b *testing.B) {
	for _, c := range []struct {
		name         string
		scrape, eval time.Duration
	}{
		{"stack_1s", time.Second, time.Second},
		{"prometheus.yml_5s", 5 * time.Second, 5 * time.Second},
		{"servicemonitor_15s", 15 * time.Second, 15 * time.Second},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := startLive(b, c.scrape, c.eval)
			alerts := []string{"ZMY_Quorum_Down", "ZMY_Network_Partition"}
			fire := map[string][]time.Duration{}
			clear := map[string][]time.Duration{}
			deadline := time.Minute + 4*(c.scrape+c.eval)
			b.ResetTimer()
			for range b.N {
				// Each sample at a random phase of the scrape and evaluation clocks: the loop
				// would otherwise start every partition just after the evaluation that saw the
				// previous heal.
				time.Sleep(rand.N(c.scrape + c.eval))
				require.NoError(b, r.sim.Partition([][]string{{"n1", "n2", "n3"}, {"n4", "n5"}}))
				at := time.Now()
				for _, a := range alerts {
					r.waitCount(b, fmt.Sprintf(`ALERTS{alertname=%q,alertstate="firing",cluster="live"}`, a), 1, deadline, a+" firing")
					fire[a] = append(fire[a], time.Since(at))
				}
				require.NoError(b, r.sim.Heal())
				at = time.Now()
				for _, a := range alerts {
					r.waitCount(b, fmt.Sprintf(`ALERTS{alertname=%q,cluster="live"}`, a), 0, deadline, a+" gone")
					clear[a] = append(clear[a], time.Since(at))
				}
			}
			b.StopTimer()
			for _, a := range alerts {
				b.ReportMetric(mean(fire[a]).Seconds(), "s-"+a+"-fires")
				b.ReportMetric(mean(clear[a]).Seconds(), "s-"+a+"-clears")
				b.Logf("%s scrape=%s eval=%s: %s fires after %s (min %s, max %s); gone %s after heal (max %s); n=%d",
					c.name, c.scrape, c.eval, a, mean(fire[a]).Round(100*time.Millisecond),
					slices.Min(fire[a]).Round(100*time.Millisecond), slices.Max(fire[a]).Round(100*time.Millisecond),
					mean(clear[a]).Round(100*time.Millisecond), slices.Max(clear[a]).Round(100*time.Millisecond), len(fire[a]))
			}
		})
	}
}

func mean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(max(len(ds), 1))
}
