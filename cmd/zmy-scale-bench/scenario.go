package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/zmyorg/zmy-responder/internal/sim"
)

// scenario is one run: Clusters simulated clusters of Nodes nodes watched every WatchInterval,
// Rate notifications a second for Duration after Warmup.
type scenario struct {
	BinDir        string
	Clusters      int
	Nodes         int
	WriteRate     float64
	WatchInterval time.Duration
	Warmup        time.Duration
	Duration      time.Duration
	Rate          float64
	Detection     map[string]string // extra detection.* settings
	Driver        string            // clusters[].driver: zmyctl or api
	Nice          int               // with zmyctl: run it under nice -n Nice (0: as is)
}

// result is what one run measured. Durations are in milliseconds, CPU in percent of one core.
type result struct {
	Clusters, Nodes int
	Watch           bool // watch mode on (off: the control run)
	Driver          string
	Nice            int `json:",omitempty"`
	LoadAverage     string

	Webhooks, WebhookErrors int
	FirstWebhookError       string `json:",omitempty"`
	P50, P99, Max           float64

	Probes          int            // probe results counted over the measured window
	ProbeFailures   int            // fail or error: every node is healthy, so each is a false reading
	ProbeNotRun     map[string]int // by result label: skipped (node breaker), budget_exhausted
	FailuresByProbe map[string]int // "probe/result"
	FailureRate     float64        // ProbeFailures / Probes
	ProbesPerMinute float64        // probe results, those not run included
	ZmyctlPerMinute float64        // node commands the responder sent: zmyctl processes, or admin API calls with the api driver

	ResponderCPU, ZmyctlCPU, FleetCPU float64
	RSSMiB, PeakRSSMiB                float64

	// Where a webhook's time can go besides its own work.
	RunQueueWaitMsPerS float64 // the responder's threads ready to run but given no core, per second
	GCCycles           int
	GCPauseMs          float64 // stop-the-world pauses, total
	JournalWrites      int
	JournalWriteMeanMs float64

	interval string
}

const tableHeader = "| clusters × nodes | watch | webhooks | p50 | p99 | max | probes/min | node commands/min | failed probes (healthy nodes) | not run | responder CPU | zmyctl CPU | simulator CPU | responder RSS (peak) |\n" +
	"|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"

func (r result) row() string {
	notRun := 0
	for _, n := range r.ProbeNotRun {
		notRun += n
	}
	watch := "every " + r.interval + ", " + r.Driver
	if r.Nice != 0 {
		watch += fmt.Sprintf(" (nice %d)", r.Nice)
	}
	if !r.Watch {
		watch = "off"
	}
	return fmt.Sprintf("| %d × %d | %s | %d | %.1f ms | %.1f ms | %.1f ms | %.0f | %.0f | %d of %d (%.2f %%) | %d | %.0f %% | %.0f %% | %.0f %% | %.0f MiB (%.0f MiB) |",
		r.Clusters, r.Nodes, watch, r.Webhooks, r.P50, r.P99, r.Max, r.ProbesPerMinute, r.ZmyctlPerMinute,
		r.ProbeFailures, r.Probes, 100*r.FailureRate, notRun, r.ResponderCPU, r.ZmyctlCPU, r.FleetCPU, r.RSSMiB, r.PeakRSSMiB)
}

// details are the lines under a row that say what the figures hide: errors, which probes failed.
func (r result) details() []string {
	var out []string
	if r.WebhookErrors > 0 {
		out = append(out, fmt.Sprintf("webhook errors: %d (first: %s)", r.WebhookErrors, r.FirstWebhookError))
	}
	if len(r.FailuresByProbe) > 0 {
		out = append(out, "failed probes by probe/result: "+formatCounts(r.FailuresByProbe))
	}
	if len(r.ProbeNotRun) > 0 {
		out = append(out, "probes not run by result: "+formatCounts(r.ProbeNotRun))
	}
	out = append(out, fmt.Sprintf("responder run-queue wait %.1f ms/s; GC %d cycles, %.1f ms stopped in all; journal writes %d, mean %.2f ms",
		r.RunQueueWaitMsPerS, r.GCCycles, r.GCPauseMs, r.JournalWrites, r.JournalWriteMeanMs))
	out = append(out, "load average at the end: "+r.LoadAverage)
	return out
}

func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

var responderReady = regexp.MustCompile(`msg="zmy-responder ready" http=(\S+)`)

func (s scenario) run(ctx context.Context) (result, error) {
	res := result{Clusters: s.Clusters, Nodes: s.Nodes, Watch: s.WatchInterval > 0, Driver: s.Driver, Nice: s.Nice,
		interval: s.WatchInterval.String()}
	responderBin, err := binPath(s.BinDir, "zmy-responder")
	if err != nil {
		return res, err
	}
	ctlBin, err := binPath(s.BinDir, "zmysimctl")
	if err != nil {
		return res, err
	}
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	dir, err := os.MkdirTemp("", "zmy-scale-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)

	readyFile := dir + "/fleet.json"
	fleet, err := startChild(dir, "fleet", []string{self, "--fleet", "--fleet.ready-file", readyFile,
		"--clusters", strconv.Itoa(s.Clusters), "--nodes", strconv.Itoa(s.Nodes),
		"--write-rate", strconv.FormatFloat(s.WriteRate, 'g', -1, 64)})
	if err != nil {
		return res, err
	}
	defer fleet.stop()
	if err := fleet.waitFor(ctx, "ready file", time.Minute, func() bool {
		_, err := os.Stat(readyFile)
		return err == nil
	}); err != nil {
		return res, err
	}
	raw, err := os.ReadFile(readyFile)
	if err != nil {
		return res, err
	}
	var clusters []sim.ReadyInfo
	if err := json.Unmarshal(raw, &clusters); err != nil {
		return res, fmt.Errorf("fleet ready file: %w", err)
	}

	cfgPath := dir + "/zmy-responder.yml"
	cfg, err := s.responderConfig(clusters, ctlBin)
	if err == nil {
		err = os.WriteFile(cfgPath, cfg, 0o600)
	}
	if err != nil {
		return res, fmt.Errorf("responder config: %w", err)
	}
	responder, err := startChild(dir, "zmy-responder", []string{responderBin, "--config.file=" + cfgPath,
		"--storage.path=" + dir + "/data", "--web.listen-address=127.0.0.1:0", "--grpc.listen-address=127.0.0.1:0"})
	if err != nil {
		return res, err
	}
	defer responder.stop()
	var base string
	if err := responder.waitFor(ctx, "ready line", time.Minute, func() bool {
		b, _ := os.ReadFile(responder.LogPath)
		if m := responderReady.FindSubmatch(b); m != nil {
			base = "http://" + string(m[1])
			return true
		}
		return false
	}); err != nil {
		return res, err
	}
	if err := pause(ctx, s.Warmup); err != nil {
		return res, err
	}

	before, err := scrapeCounters(ctx, base+"/metrics")
	if err != nil {
		return res, err
	}
	rCPU0, zCPU0, err := responder.cpu()
	if err != nil {
		return res, err
	}
	fCPU0, _, err := fleet.cpu()
	if err != nil {
		return res, err
	}
	rq0, err := responder.runQueueWait()
	if err != nil {
		return res, err
	}
	start := time.Now()
	var maxRSS int64
	lat, errs, firstErr := sendWebhooks(ctx, base+"/webhook", s.Rate, s.Duration, func() {
		if rss, _, err := responder.memory(); err == nil {
			maxRSS = max(maxRSS, rss)
		}
	})
	elapsed := time.Since(start)
	after, err := scrapeCounters(ctx, base+"/metrics")
	if err != nil {
		return res, err
	}
	rCPU1, zCPU1, err := responder.cpu()
	if err != nil {
		return res, err
	}
	fCPU1, _, err := fleet.cpu()
	if err != nil {
		return res, err
	}
	rq1, err := responder.runQueueWait()
	if err != nil {
		return res, err
	}
	_, peak, err := responder.memory()
	if err != nil {
		return res, err
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}

	res.LoadAverage = loadAverage()
	res.Webhooks, res.WebhookErrors = len(lat), errs
	if firstErr != nil {
		res.FirstWebhookError = firstErr.Error()
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		res.P50, res.P99, res.Max = msOf(quantile(lat, 0.5)), msOf(quantile(lat, 0.99)), msOf(lat[len(lat)-1])
	}
	res.countProbes(after.diff(before, "zmy_responder_probe_results_total"))
	minutes := elapsed.Minutes()
	res.ProbesPerMinute, res.ZmyctlPerMinute = float64(res.Probes)/minutes, after.total(before, "zmy_responder_commands_total")/minutes
	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / elapsed.Seconds() }
	res.ResponderCPU, res.ZmyctlCPU, res.FleetCPU = pct(rCPU1-rCPU0), pct(zCPU1-zCPU0), pct(fCPU1-fCPU0)
	res.RSSMiB, res.PeakRSSMiB = mib(maxRSS), mib(peak)
	res.RunQueueWaitMsPerS = msOf(rq1-rq0) / elapsed.Seconds()
	res.GCCycles = int(after.total(before, "go_gc_duration_seconds_count"))
	res.GCPauseMs = 1000 * after.total(before, "go_gc_duration_seconds_sum")
	res.JournalWrites = int(after.total(before, "zmy_responder_journal_write_duration_seconds_count"))
	if res.JournalWrites > 0 {
		res.JournalWriteMeanMs = 1000 * after.total(before, "zmy_responder_journal_write_duration_seconds_sum") / float64(res.JournalWrites)
	}
	return res, nil
}

// countProbes sorts the probe results of the measured window (probe_results_total's growth by
// series) into answers, failures — every node is healthy, so each fail or error is a false
// reading — and probes not run (skipped, budget_exhausted).
func (r *result) countProbes(grown map[labelSet]float64) {
	r.ProbeNotRun, r.FailuresByProbe = map[string]int{}, map[string]int{}
	for k, v := range grown {
		probe, result := k.get("probe"), k.get("result")
		n := int(v)
		if n == 0 {
			continue
		}
		r.Probes += n
		switch result {
		case "ok":
		case "fail", "error":
			r.ProbeFailures += n
			r.FailuresByProbe[probe+"/"+result] += n
		default:
			r.ProbeNotRun[result] += n
		}
	}
	if r.Probes > 0 {
		r.FailureRate = float64(r.ProbeFailures) / float64(r.Probes)
	}
}

// responderConfig is every simulated cluster, driven through the lean zmysimctl (or, with the api
// driver, the simulated nodes' admin API), watched every WatchInterval; everything else default.
func (s scenario) responderConfig(clusters []sim.ReadyInfo, ctl string) ([]byte, error) {
	detection := map[string]any{"watch_interval": s.WatchInterval.String()}
	for k, v := range s.Detection {
		var val any
		if err := yaml.Unmarshal([]byte(v), &val); err != nil {
			return nil, fmt.Errorf("--detection %s=%s: %w", k, v, err)
		}
		detection[k] = val
	}
	var cs []map[string]any
	for _, c := range clusters {
		var nodes []map[string]any
		for _, n := range c.Nodes {
			nodes = append(nodes, map[string]any{"id": n.ID, "host": n.Host, "admin": n.Admin,
				"metrics_url": n.MetricsURL, "health_url": n.HealthURL, "peer_addr": n.PeerAddr, "grpc_addr": n.GRPCAddr})
		}
		argv := []string{ctl, "--endpoint", "{{.Node.Admin}}"}
		if s.Nice != 0 {
			argv = append([]string{"nice", "-n", strconv.Itoa(s.Nice)}, argv...)
		}
		cs = append(cs, map[string]any{
			"name":       c.Cluster,
			"driver":     s.Driver,
			"zmyctl":     argv,
			"zmyctl_env": map[string]string{"GOMAXPROCS": "1"},
			"nodes":      nodes,
		})
	}
	return yaml.Marshal(map[string]any{"detection": detection, "clusters": cs})
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// quantile of sorted durations, nearest rank.
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
