package detect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

func staticConfig(clusters ...config.ClusterConfig) *config.Config {
	return &config.Config{Detection: config.DefaultDetection, Remediation: config.DefaultRemediation, Clusters: clusters}
}

func staticCluster(name string, nodes ...string) config.ClusterConfig {
	c := config.ClusterConfig{Name: name, Zmyctl: []string{"zmyctl", "--endpoint", "{{.Node.Admin}}"}}
	for _, n := range nodes {
		c.Nodes = append(c.Nodes, config.NodeConfig{ID: n, Admin: "http://" + n})
	}
	return c
}

func TestConfirmUnknownCluster(t *testing.T) {
	p := NewProber(staticConfig(staticCluster("a", "n1")), Options{})
	_, err := p.Confirm(t.Context(), "nope")
	require.ErrorIs(t, err, incident.ErrUnknownCluster)
	_, err = p.RecoveryGate(t.Context(), "nope")
	require.ErrorIs(t, err, incident.ErrUnknownCluster)
}

func TestConfirmCancelledByCaller(t *testing.T) {
	p := NewProber(staticConfig(staticCluster("a", "n1")), Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := p.Confirm(ctx, "a")
	require.ErrorIs(t, err, context.Canceled)
}

func TestSetConfigKeepsWhatWasLearned(t *testing.T) {
	reg := prometheus.NewRegistry()
	now := time.Unix(1_000, 0)
	p := NewProber(staticConfig(staticCluster("a", "n1", "n2"), staticCluster("b", "n1")),
		Options{Registerer: reg, Now: func() time.Time { return now }})

	// Teach cluster a: a slow heartbeat and a skewed n2, as a round would.
	_, cs, err := p.state("a")
	require.NoError(t, err)
	cs.mu.Lock()
	cs.threshold.observe(now, []float64{2}, 0, true, config.DefaultDetection.Threshold)
	cs.fuse = cs.fuse.observe([]ClockReading{{Node: "n1", At: now, Offset: time.Second}, {Node: "n2", At: now, Offset: time.Second}},
		config.DefaultDetection.ClockFuse)
	cs.mu.Unlock()
	cs.breaker("n1", config.DefaultDetection.NodeBreaker)
	p.metrics.clockOffset.WithLabelValues("a", "n2").Set(1)

	// Reload: cluster b and node n2 are gone.
	p.SetConfig(staticConfig(staticCluster("a", "n1")))
	_, cs2, err := p.state("a")
	require.NoError(t, err)
	require.Same(t, cs.memory, cs2.memory, "what was learned survives a reload")
	require.Contains(t, cs2.fuse.Nodes, "n1")
	require.NotContains(t, cs2.fuse.Nodes, "n2", "a removed node cannot hold the fuse")
	require.Contains(t, cs2.breakers, "n1")
	_, err = p.Threshold("b")
	require.ErrorIs(t, err, incident.ErrUnknownCluster)

	now = now.Add(10 * time.Second)
	d, err := p.Threshold("a")
	require.NoError(t, err)
	require.Equal(t, time.Duration(1.8*2*float64(time.Second)), d, "the slow sample is still in the window")
	require.Equal(t, 3.6, testutil.ToFloat64(p.metrics.threshold.WithLabelValues("a")))

	n, err := testutil.GatherAndCount(reg, "zmy_responder_clock_offset_seconds")
	require.NoError(t, err)
	require.Equal(t, 1, n, "only a/n1 is still exported")
	n, err = testutil.GatherAndCount(reg, "zmy_responder_split_brain_threshold_seconds")
	require.NoError(t, err)
	require.Equal(t, 1, n)

	// New breaker settings start every breaker afresh.
	cfg := staticConfig(staticCluster("a", "n1"))
	cfg.Detection.NodeBreaker.ConsecutiveFailures = 9
	p.SetConfig(cfg)
	_, cs3, _ := p.state("a")
	require.Empty(t, cs3.breakers)
}

func TestMetricsExistAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewProber(staticConfig(staticCluster("a", "n1", "n2")), Options{Registerer: reg})
	// A second prober on the same registry (tests, reloads) reuses the collectors.
	NewProber(staticConfig(staticCluster("a", "n1", "n2")), Options{Registerer: reg})
	for name, want := range map[string]int{
		"zmy_responder_probe_duration_seconds":        len(ProbeNames),
		"zmy_responder_probe_results_total":           len(ProbeNames) * len(Statuses),
		"zmy_responder_verdicts_total":                3,
		"zmy_responder_split_brain_threshold_seconds": 1,
		"zmy_responder_clock_offset_seconds":          2,
		"zmy_responder_clock_fuse_tripped":            1,
		"zmy_responder_partition_score":               0, // nothing measured yet
	} {
		n, err := testutil.GatherAndCount(reg, name)
		require.NoError(t, err)
		require.Equal(t, want, n, name)
	}
	n, err := testutil.GatherAndCount(reg, "zmy_responder_split_brain_threshold_seconds")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP zmy_responder_split_brain_threshold_seconds Dynamic split-brain threshold: max(min, rtt_factor × P99 heartbeat RTT + median sync lag); the probe budget.
# TYPE zmy_responder_split_brain_threshold_seconds gauge
zmy_responder_split_brain_threshold_seconds{cluster="a"} 2
`), "zmy_responder_split_brain_threshold_seconds"), "exported from the start at the minimum")
}

// Watch mode exports health without an alert, follows a partition, and stops on reload.
func TestScenarioWatchMode(t *testing.T) {
	s := startSim(t, 5, "--write-rate", "200")
	p, reg := s.prober(func(c *config.Config) {
		c.Detection.WatchInterval = model.Duration(100 * time.Millisecond)
		c.Detection.Threshold.Recompute = model.Duration(50 * time.Millisecond)
	})
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() { p.Run(ctx); close(stopped) }()

	okControl := func() float64 { return testutil.ToFloat64(p.metrics.probeResults.WithLabelValues(ProbeControl, "ok")) }
	eventually(t, func() bool { return okControl() >= 15 }, "watch rounds probe every node")
	eventually(t, func() bool { return partitionScore(t, reg, s.name) == 0 }, "a connected network scores 0")
	require.Equal(t, 0.0, testutil.ToFloat64(p.metrics.verdicts.WithLabelValues("not_confirmed")), "watch rounds are not verdicts")

	s.fault("partition", "n1,n2,n3/n4,n5")
	eventually(t, func() bool { return partitionScore(t, reg, s.name) == 1 },
		"partition_score follows the split")

	// Reload without a watch interval: the loops stop.
	cfg := *s.cfg
	cfg.Detection.WatchInterval = 0
	p.SetConfig(&cfg)
	time.Sleep(300 * time.Millisecond)
	before := okControl()
	time.Sleep(400 * time.Millisecond)
	require.Equal(t, before, okControl(), "no rounds after the reload")

	cancel()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	s.requireOnlyReads()
}

// partitionScore is the exported zmy_responder_partition_score of cluster, -1 when absent.
func partitionScore(t *testing.T, reg prometheus.Gatherer, cluster string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "zmy_responder_partition_score" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "cluster" && l.GetValue() == cluster {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

// A score read during an incident is not exported as the network's state long after it:
// with watch mode off it lasts a minute, with watch mode three intervals; the time it was
// measured stays exported. A round where no netcheck answered measured nothing.
func TestPartitionScoreGoesStale(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	cfg := staticConfig(staticCluster("a", "n1", "n2"), staticCluster("w", "n1", "n2"))
	cfg.Clusters[1].WatchInterval = model.Duration(time.Minute)
	reg := prometheus.NewRegistry()
	p := NewProber(cfg, Options{Registerer: reg, Now: clock})
	require.Equal(t, -1.0, partitionScore(t, reg, "a"), "nothing measured yet")

	answered := []Result{{Probe: ProbeNetcheck, Node: "n1", Status: StatusFail, Data: &zmy.Netcheck{Node: "n1", PartitionScore: 1}}}
	p.metrics.partition.set("a", 1, now, answered)
	p.metrics.partition.set("w", 1, now, answered)
	p.metrics.partition.set("a", 0.5, now, []Result{{Probe: ProbeNetcheck, Node: "n1", Status: StatusError, Reason: "timed out"}})
	require.Equal(t, 1.0, partitionScore(t, reg, "a"), "a round without a netcheck answer changes nothing")
	require.Equal(t, 1.0, partitionScore(t, reg, "w"))

	now = now.Add(61 * time.Second)
	require.Equal(t, -1.0, partitionScore(t, reg, "a"), "stale after a minute without watch mode")
	require.Equal(t, 1.0, partitionScore(t, reg, "w"), "current for 3 watch intervals")
	now = now.Add(2 * time.Minute)
	require.Equal(t, -1.0, partitionScore(t, reg, "w"))
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP zmy_responder_partition_score_timestamp_seconds When partition_score was last measured, unix seconds.
# TYPE zmy_responder_partition_score_timestamp_seconds gauge
zmy_responder_partition_score_timestamp_seconds{cluster="a"} 1.7e+09
zmy_responder_partition_score_timestamp_seconds{cluster="w"} 1.7e+09
`), "zmy_responder_partition_score_timestamp_seconds"))

	// A cluster removed by a reload is forgotten.
	p.SetConfig(staticConfig(staticCluster("w", "n1", "n2")))
	n, err := testutil.GatherAndCount(reg, "zmy_responder_partition_score_timestamp_seconds")
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 15s: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// One round scrapes each node's /metrics once: the data-plane and clock probes share it, and
// the request asks for no compression (loopback scrapes of every node, every round).
func TestRoundScrapesEachNodeOnce(t *testing.T) {
	var mu sync.Mutex
	hits := map[string]int{}
	var gzipAsked atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path]++
		mu.Unlock()
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			gzipAsked.Store(true)
		}
		fmt.Fprintf(w, "zmy_shard_last_applied_index{shard=\"1\"} 10\nzmy_node_clock_seconds %.3f\n",
			float64(time.Now().UnixMilli())/1000)
	}))
	defer srv.Close()
	c := staticCluster("a", "n1", "n2", "n3")
	c.Zmyctl = []string{"/bin/false"}
	for i := range c.Nodes {
		c.Nodes[i].MetricsURL = srv.URL + "/" + c.Nodes[i].ID + "/metrics"
	}
	p := NewProber(staticConfig(c), Options{})
	defer p.Close()
	v, err := p.Confirm(t.Context(), "a")
	require.NoError(t, err)
	require.Equal(t, map[string]int{"/n1/metrics": 1, "/n2/metrics": 1, "/n3/metrics": 1}, hits)
	require.False(t, gzipAsked.Load())
	answered := map[string]int{}
	for _, e := range v.Evidence {
		if (e.Probe == ProbeData || e.Probe == ProbeClock) && e.OK {
			answered[e.Probe]++
		}
	}
	require.Equal(t, map[string]int{ProbeData: 3, ProbeClock: 3}, answered, "both probes read the one scrape")
}

func TestSharedScrapeHonoursEachCallersDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	calls := atomic.Int32{}
	get := sharedScrape(func() (*zmy.NodeMetrics, error) {
		calls.Add(1)
		<-release // a node that never answers
		return nil, errors.New("released")
	})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			_, err := get(ctx)
			require.ErrorIs(t, err, context.DeadlineExceeded)
		})
	}
	wg.Wait()
	require.Less(t, time.Since(start), time.Second)
	require.Equal(t, int32(1), calls.Load(), "one scrape for both callers")
}
