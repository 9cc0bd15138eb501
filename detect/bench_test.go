package detect

import (
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"golang.org/x/sync/errgroup"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/testenv"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// BenchmarkConfirm measures verdict latency on loopback against the real simulator, with each
// node driver: every node probed (zmyctl status and netcheck through the admin API, or exec'd
// through the simulator's lean zmysimctl; /metrics scraped once, peer port dialled, /healthz and
// gRPC health), then decide(). Reported: p50 and p99 of one Confirm, in milliseconds, and the
// CPU each verdict cost the responder (also per node), the zmyctl processes and the simulator
// (all three share the machine's cores). The zmyctl driver's rows also report the exec floor:
// the same number of do-nothing execs (`true`, two per node) at the same concurrency.
// Run with: go test -run '^$' -bench BenchmarkConfirm -benchtime 30x ./detect/
func BenchmarkConfirm(b *testing.B) {
	// The daemon runs with GOGC=400 (cmd/zmy-responder); measure the prober as it runs there.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	for _, nodes := range []int{5, 50, 200} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			s := startSim(b, nodes)
			for _, driver := range []string{config.DriverAPI, config.DriverZmyctl} {
				b.Run("driver="+driver, func(b *testing.B) { benchConfirm(b, s, nodes, driver) })
			}
		})
	}
}

func benchConfirm(b *testing.B, s *simCluster, nodes int, driver string) {
	// A budget no round reaches, so the figure is the time to a complete verdict rather than
	// the 2s default budget at which an overloaded round would stop.
	p, _ := s.prober(func(c *config.Config) {
		c.Clusters[0].Driver = driver
		c.Detection.Threshold.Min = model.Duration(time.Minute)
		c.Detection.ProbeTimeout = model.Duration(time.Minute)
		if n, err := strconv.Atoi(os.Getenv("DETECT_BENCH_CONCURRENCY")); err == nil {
			c.Detection.Concurrency = n
		}
	})
	defer p.Close()
	// Warm up: connections, page cache for the ctl binary, the first election.
	for range 2 {
		if _, err := p.Confirm(b.Context(), s.name); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	missed := 0
	self0, children0 := testenv.CPU()
	sim0, simErr := s.sim.CPU()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		v, err := p.Confirm(b.Context(), s.name)
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range unansweredControlData(v) {
			missed++
			b.Logf("%s/%s did not answer: %s", e.Node, e.Probe, e.Error)
		}
	}
	b.StopTimer()
	self1, children1 := testenv.CPU()
	sim1, err := s.sim.CPU()
	if simErr != nil || err != nil {
		b.Fatal("simulator CPU: ", simErr, err)
	}
	// Where the time went, per verdict: the prober (this process), the zmyctl processes it ran
	// (reaped children), and the simulated nodes answering.
	perOp := func(d time.Duration) float64 { return ms(d) / float64(b.N) }
	b.ReportMetric(perOp(self1-self0), "responder-cpu-ms/op")
	b.ReportMetric(perOp(self1-self0)*1000/float64(nodes), "responder-cpu-us/node")
	b.ReportMetric(perOp(children1-children0), "zmyctl-cpu-ms/op")
	b.ReportMetric(perOp(sim1-sim0), "sim-cpu-ms/op")
	slices.Sort(lat)
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[min(len(lat)-1, len(lat)*99/100)]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(float64(missed)/float64(b.N), "unanswered/op")
	if driver == config.DriverZmyctl {
		b.ReportMetric(ms(execFloor(b, s.cfg, b.N)), "exec-floor-p50-ms")
	}
}

// execFloor is the p50 over rounds of what the zmyctl driver's process starts alone cost a
// verdict: two do-nothing execs (`true`) per node, through the same driver machinery (process
// group, pipes, wait) and at the prober's concurrency.
func execFloor(b *testing.B, cfg *config.Config, rounds int) time.Duration {
	cc := cfg.Clusters[0]
	d, err := zmy.NewDriver(config.ClusterConfig{Name: "floor", Zmyctl: []string{"true"}, Nodes: cc.Nodes}, zmy.DriverOptions{})
	if err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, rounds)
	for range rounds {
		g, ctx := errgroup.WithContext(b.Context())
		g.SetLimit(cfg.Detection.Concurrency)
		start := time.Now()
		for _, n := range cc.Nodes {
			for range 2 {
				g.Go(func() error { _, err := d.Run(ctx, n); return err })
			}
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	return lat[len(lat)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// unansweredControlData lists control and data probes that got no answer; the benchmark reports
// how many per verdict, since a verdict reached without answers is cheaper and worth less.
func unansweredControlData(v *incident.Verdict) []incident.Evidence {
	var out []incident.Evidence
	for _, e := range v.Evidence {
		if (e.Probe == ProbeControl || e.Probe == ProbeData) && !e.OK {
			out = append(out, e)
		}
	}
	return out
}
