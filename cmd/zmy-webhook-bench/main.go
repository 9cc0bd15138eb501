// Command zmy-webhook-bench is `make bench`: webhook ingest of the real zmy-responder (durable
// journal, fsync before 200) against a do-nothing echo handler as the ceiling, for several
// payload sizes and numbers of concurrent senders, plus the daemon's idle memory. Both servers
// run as separate processes on loopback; this process is the load generator.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
)

func main() { os.Exit(run()) }

func run() int {
	app := kingpin.New("zmy-webhook-bench", "Benchmark zmy-responder's webhook ingest against a do-nothing handler.")
	var (
		noop      = app.Flag("noop-server", "Serve the do-nothing handler (used by the benchmark itself).").Hidden().Bool()
		responder = app.Flag("responder", "Path of the zmy-responder binary.").Default("bin/zmy-responder").String()
		sizes     = app.Flag("sizes", "Alerts per notification.").Default("1,100,10000").String()
		senders   = app.Flag("senders", "Concurrent senders.").Default("1,16,64").String()
		duration  = app.Flag("duration", "Measured time per run (payloads under 1,000 alerts).").Default("3s").Duration()
		warmup    = app.Flag("warmup", "Unmeasured time before each run.").Default("500ms").Duration()
		reps      = app.Flag("reps", "Runs per cell; medians are reported.").Default("3").Int()
		bigReqs   = app.Flag("big-requests", "Requests per sender and run for payloads of 1,000 alerts or more.").Default("3").Int()
		etcdBin   = app.Flag("etcd", "etcd binary for the storage comparison (bbolt against etcd); empty skips it.").Default("etcd").String()
		stSizes   = app.Flag("storage-sizes", "Alerts per notification in the storage comparison.").Default("1").String()
		stSenders = app.Flag("storage-senders", "Concurrent senders in the storage comparison.").Default("64").String()
		only      = app.Flag("storage-only", "Run only the storage comparison.").Bool()
	)
	kingpin.MustParse(app.Parse(os.Args[1:]))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *noop {
		if err := serveNoop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	dir, err := os.MkdirTemp("", "zmy-webhook-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "zmy-webhook-bench:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	szs, err := ints(*sizes)
	if err == nil && !*only {
		var snd []int
		if snd, err = ints(*senders); err == nil {
			err = bench(ctx, *responder, dir, szs, snd, *duration, *warmup, *reps, *bigReqs)
		}
	}
	if err == nil && *etcdBin != "" {
		var stSz, stSnd []int
		if stSz, err = ints(*stSizes); err == nil {
			if stSnd, err = ints(*stSenders); err == nil {
				err = benchStorage(ctx, *responder, *etcdBin, dir, stSz, stSnd, *duration, *warmup, *reps)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "zmy-webhook-bench:", err)
		return 1
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

func bench(ctx context.Context, bin, dir string, sizes, senders []int, d, warmup time.Duration, reps, bigReqs int) error {
	idle, err := idleMemory(ctx, bin, dir)
	if err != nil {
		return err
	}
	fmt.Printf("zmy-responder idle: VmRSS %.1f MiB (goal ≤ 64 MiB)\n", mib(idle))
	fmt.Printf("machine: %d CPUs (GOMAXPROCS %d), %s/%s; %d runs per cell, medians\n\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, reps)
	fmt.Println("| alerts/notification | senders | responder deliveries/s | p50 | p99 | do-nothing deliveries/s | p50 | p99 | ratio | responder CPU/delivery | do-nothing CPU/delivery | responder peak RSS |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

	for _, size := range sizes {
		tmpl := payloadTemplate(size)
		for _, s := range senders {
			maxReq, w, dd := 0, warmup, d
			if size >= 1000 {
				maxReq, w, dd = bigReqs*s, 0, time.Hour
			}
			var resp, base []result
			var peak int64
			var respCPU, baseCPU []float64
			for range reps {
				// Alternate the two servers so that drift in the machine's load hits both.
				n, err := startNoop(ctx)
				if err != nil {
					return err
				}
				c0, _ := n.cpu()
				r, err := drive(ctx, n.url, tmpl, s, dd, w, maxReq)
				c1, _ := n.cpu()
				n.stop()
				if err != nil {
					return fmt.Errorf("do-nothing handler, %d alerts, %d senders: %w", size, s, err)
				}
				base = append(base, r)
				baseCPU = append(baseCPU, perDelivery(c1-c0, r, w))

				p, err := startResponder(ctx, bin, dir)
				if err != nil {
					return err
				}
				c0, _ = p.cpu()
				r, err = drive(ctx, p.url, tmpl, s, dd, w, maxReq)
				c1, _ = p.cpu()
				_, pk, _ := p.memory()
				peak = max(peak, pk)
				p.stop()
				if err != nil {
					return fmt.Errorf("zmy-responder, %d alerts, %d senders: %w", size, s, err)
				}
				resp = append(resp, r)
				respCPU = append(respCPU, perDelivery(c1-c0, r, w))
			}
			rm, bm := summarize(resp), summarize(base)
			fmt.Printf("| %d | %d | %.0f | %s | %s | %.0f | %s | %s | %.0f%% | %.0f µs | %.0f µs | %.0f MiB |\n",
				size, s, rm.rate, ms(rm.p50), ms(rm.p99), bm.rate, ms(bm.p50), ms(bm.p99), 100*rm.rate/bm.rate,
				medianOf(respCPU), medianOf(baseCPU), mib(peak))
		}
	}
	return nil
}

// idleMemory starts the daemon, lets it settle, and reads its resident memory.
func idleMemory(ctx context.Context, bin, dir string) (int64, error) {
	p, err := startResponder(ctx, bin, dir)
	if err != nil {
		return 0, err
	}
	defer p.stop()
	select {
	case <-time.After(3 * time.Second):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	rss, _, err := p.memory()
	return rss, err
}

type summary struct {
	rate     float64
	p50, p99 time.Duration
}

// summarize takes the median of each figure over the runs.
func summarize(rs []result) summary {
	med := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return medianOf(v)
	}
	return summary{
		rate: med(result.rate),
		p50:  time.Duration(med(func(r result) float64 { return float64(r.P50) })),
		p99:  time.Duration(med(func(r result) float64 { return float64(r.P99) })),
	}
}

// perDelivery is the server's CPU time per delivery in µs; the warm-up's requests are not in r,
// so its share of the CPU time is removed in proportion.
func perDelivery(cpu time.Duration, r result, warmup time.Duration) float64 {
	total := r.Elapsed + warmup
	measured := float64(cpu) * float64(r.Elapsed) / float64(total)
	return measured / float64(time.Microsecond) / float64(r.Deliveries)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }
