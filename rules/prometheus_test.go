package rules

import (
	"fmt"
	"os"
	"path/filepath"
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
