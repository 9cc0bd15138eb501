package zmy

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/zmyorg/zmy-responder/internal/config"
)

// BenchmarkDriverSimulator measures the drivers' latency per command: through `zmysim ctl`
// (fork/exec of the ctl binary, one HTTP call to the node, parsing), the lean zmysimctl, and
// the admin API (one HTTP call on a kept-alive connection, parsing), reporting p50 and p99 per
// command. BENCHMARKS.md has the method and the figures. Run:
//
//	go test -run '^$' -bench BenchmarkDriverSimulator -benchtime 300x ./internal/zmy
func BenchmarkDriverSimulator(b *testing.B) {
	s := startSim(b)
	d := s.driver(b, DriverOptions{})
	n1 := s.nodes[0]
	type call func(ctx context.Context) error
	commands := []struct {
		name string
		run  call
	}{
		{CmdStatus, func(ctx context.Context) error { _, _, err := d.Status(ctx, n1); return err }},
		{CmdRaftState, func(ctx context.Context) error { _, _, err := d.RaftState(ctx, n1); return err }},
		{CmdSuspend, func(ctx context.Context) error { _, _, err := d.Suspend(ctx, n1); return err }},
		{CmdSnapshotSave, func(ctx context.Context) error { _, _, err := d.SnapshotSave(ctx, n1, "pre-recover-bench"); return err }},
		{CmdSnapshotList, func(ctx context.Context) error { _, _, err := d.SnapshotList(ctx, n1); return err }},
		{CmdRecover, func(ctx context.Context) error { _, _, err := d.Recover(ctx, n1); return err }},
		{CmdResume, func(ctx context.Context) error { _, _, err := d.Resume(ctx, n1); return err }},
		{CmdNetcheck, func(ctx context.Context) error { _, _, err := d.Netcheck(ctx, n1); return err }},
	}
	// The lean zmysimctl that generated configs use when it sits beside zmysim.
	lean, err := NewDriver(config.ClusterConfig{Name: "t", Nodes: s.nodes,
		Zmyctl: []string{filepath.Join(filepath.Dir(s.bin), "zmysimctl"), "--endpoint", "{{.Node.Admin}}"}}, DriverOptions{})
	if err != nil {
		b.Fatal(err)
	}
	commands = append(commands,
		struct {
			name string
			run  call
		}{"status_zmysimctl", func(ctx context.Context) error { _, _, err := lean.Status(ctx, n1); return err }},
		struct {
			name string
			run  call
		}{"suspend_zmysimctl", func(ctx context.Context) error { _, _, err := lean.Suspend(ctx, n1); return err }})
	// The admin API, over a kept-alive connection: no process at all.
	api := s.apiDriver(b, DriverOptions{})
	commands = append(commands, []struct {
		name string
		run  call
	}{
		{"status_api", func(ctx context.Context) error { _, _, err := api.Status(ctx, n1); return err }},
		{"suspend_api", func(ctx context.Context) error { _, _, err := api.Suspend(ctx, n1); return err }},
		{"netcheck_api", func(ctx context.Context) error { _, _, err := api.Netcheck(ctx, n1); return err }},
	}...)
	// The floor: the same driver running /bin/true, i.e. process group, pipes, fork/exec and wait.
	floor, err := NewDriver(config.ClusterConfig{Name: "t", Zmyctl: []string{"true"}}, DriverOptions{})
	if err != nil {
		b.Fatal(err)
	}
	commands = append(commands, struct {
		name string
		run  call
	}{"exec_true", func(ctx context.Context) error { _, err := floor.Run(ctx, n1); return err }})

	// Throughput with 16 calls in flight, as containment of a large cluster runs them.
	b.Run("status_parallel16", func(b *testing.B) {
		b.SetParallelism(16 / max(1, runtime.GOMAXPROCS(0)))
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := d.Status(b.Context(), n1); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
	})

	for _, c := range commands {
		b.Run(c.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				start := time.Now()
				if err := c.run(b.Context()); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(ms(percentile(lat, 0.50)), "p50-ms")
			b.ReportMetric(ms(percentile(lat, 0.99)), "p99-ms")
			b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
		})
	}
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkParseNetcheck200 decodes one node's netcheck answer in a 200-node cluster (199 peers,
// ≈ 20 KB), with the reflection-free decoder ParseNetcheck uses and with encoding/json.
//
//	go test -run '^$' -bench ParseNetcheck200 ./internal/zmy
func BenchmarkParseNetcheck200(b *testing.B) {
	nc := Netcheck{Node: "n1", PartitionScore: 0}
	for i := 2; i <= 200; i++ {
		nc.Peers = append(nc.Peers, PeerCheck{Peer: fmt.Sprintf("n%d", i), Addr: fmt.Sprintf("127.0.0.1:%d", 40000+i),
			Reachable: true, RTTMillis: 0.5 + float64(i%25)/10})
	}
	raw, err := json.Marshal(nc)
	if err != nil {
		b.Fatal(err)
	}
	out := string(raw) + "\n"
	b.Run("ParseNetcheck", func(b *testing.B) {
		b.SetBytes(int64(len(out)))
		for b.Loop() {
			if _, err := ParseNetcheck(out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.SetBytes(int64(len(out)))
		for b.Loop() {
			if _, err := parseEither(out, ParseNetcheckText, validateNetcheck); err != nil {
				b.Fatal(err)
			}
		}
	})
}
