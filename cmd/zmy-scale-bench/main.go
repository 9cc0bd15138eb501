// Command zmy-scale-bench is `make bench-scale`: one real zmy-responder watching N simulated
// clusters of 5 nodes on a 10 s watch interval while Alertmanager-like notifications arrive at
// 1 per second. It reports the webhook's latency under that probe load, the share of probes of
// healthy nodes that failed, the responder's CPU and memory, and how many probes and zmyctl
// processes a minute the watch costs. The simulated clusters run in a child process of their
// own (this binary with --fleet), so their CPU is counted apart from the responder's.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
)

func main() { os.Exit(run()) }

func run() int {
	app := kingpin.New("zmy-scale-bench", "Benchmark one zmy-responder watching many simulated clusters while it ingests webhooks.")
	var (
		fleet      = app.Flag("fleet", "Run the simulated clusters (used by the benchmark itself).").Hidden().Bool()
		fleetReady = app.Flag("fleet.ready-file", "Where --fleet writes the clusters' endpoints.").Hidden().String()
		bin        = app.Flag("bin-dir", "Directory holding zmy-responder and zmysimctl.").Default("bin").String()
		clusters   = app.Flag("clusters", "Numbers of simulated clusters, one run each.").Default("5,20,50").String()
		nodes      = app.Flag("nodes", "Nodes per cluster.").Default("5").Int()
		writeRate  = app.Flag("write-rate", "Writes per second per simulated cluster.").Default("20").Float64()
		interval   = app.Flag("watch-interval", "detection.watch_interval of the responder.").Default("10s").Duration()
		warmup     = app.Flag("warmup", "Unmeasured time after the responder is ready (default: one watch interval).").Duration()
		duration   = app.Flag("duration", "Measured time.").Default("60s").Duration()
		rate       = app.Flag("rate", "Webhook notifications per second.").Default("1").Float64()
		detection  = app.Flag("detection", "Extra detection settings for the responder, key=value (e.g. concurrency=16).").StringMap()
		control    = app.Flag("watch-off", "Also run each size with watch mode off first: the webhook's floor on this machine at that moment.").Default("true").Bool()
		jsonOut    = app.Flag("json", "Also write the results as JSON to FILE.").String()
		driver     = app.Flag("driver", "clusters[].driver of the responder: zmyctl (a process per node command) or api (requests to the nodes' admin API).").Default("zmyctl").Enum("zmyctl", "api")
		nice       = app.Flag("zmyctl-nice", "With --driver=zmyctl, run zmyctl under `nice -n N` (0: as is): probe processes at a lower CPU priority than the responder.").Default("0").Int()
	)
	kingpin.MustParse(app.Parse(os.Args[1:]))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *fleet {
		if err := runFleet(ctx, *clusters, *nodes, *writeRate, *fleetReady); err != nil {
			fmt.Fprintln(os.Stderr, "zmy-scale-bench --fleet:", err)
			return 1
		}
		return 0
	}
	ns, err := ints(*clusters)
	if err != nil {
		fmt.Fprintln(os.Stderr, "zmy-scale-bench: --clusters", err)
		return 1
	}
	w := *warmup
	if w == 0 {
		w = *interval
	}
	o := scenario{
		BinDir: *bin, Nodes: *nodes, WriteRate: *writeRate, WatchInterval: *interval,
		Warmup: w, Duration: *duration, Rate: *rate, Detection: *detection, Driver: *driver, Nice: *nice,
	}
	if o.Driver != "zmyctl" {
		o.Nice = 0
	}
	fmt.Printf("machine: %d CPUs, load average %s; %d nodes per cluster, watch every %s, %.3g webhooks/s for %s after %s warm-up\n\n",
		runtime.NumCPU(), loadAverage(), o.Nodes, o.WatchInterval, o.Rate, o.Duration, o.Warmup)
	fmt.Println(tableHeader)
	var all []result
	for _, n := range ns {
		o.Clusters = n
		runs := []scenario{o}
		if *control {
			off := o
			off.WatchInterval = 0
			runs = []scenario{off, o}
		}
		for _, sc := range runs {
			r, err := sc.run(ctx)
			if err != nil {
				fmt.Fprintf(os.Stderr, "zmy-scale-bench: %d clusters: %v\n", n, err)
				return 1
			}
			fmt.Println(r.row())
			for _, line := range r.details() {
				fmt.Println("  " + line)
			}
			all = append(all, r)
		}
	}
	if *jsonOut != "" {
		b, err := json.MarshalIndent(all, "", "  ")
		if err == nil {
			err = os.WriteFile(*jsonOut, append(b, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "zmy-scale-bench: --json:", err)
			return 1
		}
	}
	return 0
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q: want positive integers separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func binPath(dir, name string) (string, error) {
	p, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s: %w (run `make build` first)", name, err)
	}
	return p, nil
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
