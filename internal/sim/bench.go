package sim

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// BenchOptions size a simulator benchmark run.
type BenchOptions struct {
	Nodes     int
	WriteRate float64
	Duration  time.Duration // how long the load is held while CPU is measured
	Scrapes   int           // sequential scrapes of one node's /metrics, timed
}

// BenchResult is what `zmysim bench` prints.
type BenchResult struct {
	Nodes           int     `json:"nodes"`
	Shards          int     `json:"shards"`
	WriteRate       float64 `json:"write_rate"`
	DurationSeconds float64 `json:"duration_seconds"`
	GOMAXPROCS      int     `json:"gomaxprocs"`
	StartupSeconds  float64 `json:"startup_seconds"`
	// CPUPercent is user+system CPU of the whole process over the load window, where 100
	// means one core fully busy.
	CPUPercent      float64 `json:"cpu_percent"`
	RSSBytes        int64   `json:"rss_bytes"`
	HeapInuseBytes  uint64  `json:"heap_inuse_bytes"`
	Goroutines      int     `json:"goroutines"`
	AcceptedWrites  uint64  `json:"accepted_writes"`
	WritesPerSecond float64 `json:"writes_per_second"`
	ScrapeBytes     int     `json:"scrape_bytes"`
	ScrapeP50Millis float64 `json:"scrape_p50_ms"`
	ScrapeP99Millis float64 `json:"scrape_p99_ms"`
	ScrapeMaxMillis float64 `json:"scrape_max_ms"`
	// ScrapeAllMillis is one sequential pass over every node's /metrics: what a Prometheus
	// scrape of the whole cluster costs the simulator.
	ScrapeAllMillis float64 `json:"scrape_all_ms"`
	LoadAverage     string  `json:"load_average,omitempty"` // /proc/loadavg at the end: other work on the machine
}

// RunBench starts an in-process cluster of o.Nodes nodes, holds o.WriteRate for o.Duration
// measuring the process's CPU, then times o.Scrapes scrapes of one node's /metrics while the
// load goes on.
func RunBench(ctx context.Context, o BenchOptions) (*BenchResult, error) {
	if o.Nodes < 1 || o.Duration <= 0 || o.Scrapes < 1 {
		return nil, fmt.Errorf("bench: nodes, duration and scrapes must be positive")
	}
	start := time.Now()
	c, err := Start(ctx, Options{Cluster: "bench", Nodes: o.Nodes, WriteRate: o.WriteRate})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer c.Close()
	res := &BenchResult{Nodes: o.Nodes, Shards: c.opts.Shards, WriteRate: o.WriteRate,
		DurationSeconds: o.Duration.Seconds(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		StartupSeconds: time.Since(start).Seconds()}

	// Let the first election settle before measuring.
	settle := time.NewTimer(2 * c.opts.ElectionDelay)
	select {
	case <-ctx.Done():
		settle.Stop()
		return nil, ctx.Err()
	case <-settle.C:
	}
	acc0 := c.acceptedTotal()
	cpu0, err := processCPU()
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	window := time.NewTimer(o.Duration)
	select {
	case <-ctx.Done():
		window.Stop()
		return nil, ctx.Err()
	case <-window.C:
	}
	cpu1, err := processCPU()
	if err != nil {
		return nil, err
	}
	wall := time.Since(t0)
	res.CPUPercent = 100 * (cpu1 - cpu0).Seconds() / wall.Seconds()
	res.AcceptedWrites = c.acceptedTotal() - acc0
	res.WritesPerSecond = float64(res.AcceptedWrites) / wall.Seconds()

	url := c.Endpoints().Nodes[0].MetricsURL
	client := &http.Client{Timeout: 10 * time.Second}
	lat := make([]time.Duration, 0, o.Scrapes)
	for range o.Scrapes {
		t := time.Now()
		n, err := scrapeOnce(ctx, client, url)
		if err != nil {
			return nil, fmt.Errorf("bench: scrape %s: %w", url, err)
		}
		lat = append(lat, time.Since(t))
		res.ScrapeBytes = n
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	res.ScrapeP50Millis = ms(lat[len(lat)/2])
	res.ScrapeP99Millis = ms(lat[(len(lat)*99)/100])
	res.ScrapeMaxMillis = ms(lat[len(lat)-1])

	t1 := time.Now()
	for _, ep := range c.Endpoints().Nodes {
		if _, err := scrapeOnce(ctx, client, ep.MetricsURL); err != nil {
			return nil, fmt.Errorf("bench: scrape %s: %w", ep.MetricsURL, err)
		}
	}
	res.ScrapeAllMillis = ms(time.Since(t1))
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.LoadAverage = strings.TrimSpace(string(la))
	}

	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	res.HeapInuseBytes = mem.HeapInuse
	res.Goroutines = runtime.NumGoroutine()
	res.RSSBytes = residentBytes()
	return res, nil
}

func (c *Cluster) acceptedTotal() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var sum uint64
	for _, n := range c.m.nodes {
		sum += n.accepted
	}
	return sum
}

func scrapeOnce(ctx context.Context, client *http.Client, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %s", resp.Status)
	}
	return int(n), err
}

// processCPU is the user+system CPU time this process has used.
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// residentBytes reads VmRSS from /proc/self/status; 0 where that file does not exist.
func residentBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
