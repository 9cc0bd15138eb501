// Command zmysim runs a simulated ZMY cluster (run), speaks zmyctl to its nodes (ctl), and
// drives it from outside (fault, nodes, audit, invariants, bench). The logic lives in
// internal/sim; this file only parses flags.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/zmyorg/zmy-responder/internal/sim"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	app := kingpin.New("zmysim", "A simulated ZMY cluster and its zmyctl, for demos and tests.")
	app.HelpFlag.Short('h')
	app.UsageWriter(stderr).ErrorWriter(stderr)
	// Flags end at the first positional word, so `ctl … status --quorum` and
	// `fault … clock n3 -1s` pass their words through untouched.
	app.Interspersed(false)

	runCmd := app.Command("run", "Run a simulated cluster until interrupted.")
	var ro runOptions
	runCmd.Flag("cluster", "Cluster name.").Required().StringVar(&ro.opts.Cluster)
	runCmd.Flag("nodes", "Number of nodes n1…nN.").Required().IntVar(&ro.opts.Nodes)
	runCmd.Flag("admin-address", "Control API listen address (port 0 picks one).").Default("127.0.0.1:0").StringVar(&ro.opts.AdminAddress)
	runCmd.Flag("etcd-endpoints", "etcd endpoints for node lease keys, comma separated.").StringVar(&ro.etcd)
	runCmd.Flag("etcd-lease-ttl", "TTL of node lease keys.").Default("10s").DurationVar(&ro.opts.EtcdLeaseTTL)
	runCmd.Flag("write-rate", "Client writes per second across the cluster.").Default("20").Float64Var(&ro.opts.WriteRate)
	runCmd.Flag("shards", "Shards the writes spread over.").Default("4").IntVar(&ro.opts.Shards)
	runCmd.Flag("election-delay", "How long a leaderless group waits before electing.").Default("300ms").DurationVar(&ro.opts.ElectionDelay)
	runCmd.Flag("responder-config", "Write a zmy-responder config for this cluster to FILE.").StringVar(&ro.responderConfig)
	runCmd.Flag("alertmanager-url", "Alertmanager URL to put in the responder config.").StringVar(&ro.alertmanager)
	runCmd.Flag("responder-driver", "Node driver of the responder config: api (the nodes' admin API) or zmyctl (one zmyctl process per command).").
		Default("api").EnumVar(&ro.driver, "api", "zmyctl")
	runCmd.Flag("prometheus-sd-file", "Write a Prometheus file_sd JSON of the node targets to FILE.").StringVar(&ro.sdFile)
	runCmd.Flag("ready-file", "Write the ready JSON line (addresses) to FILE.").StringVar(&ro.readyFile)
	runCmd.Flag("log.level", "debug, info, warn or error.").Default("info").StringVar(&ro.logLevel)

	ctlCmd := app.Command("ctl", "zmyctl for a simulated node.")
	ctlEndpoint := ctlCmd.Flag("endpoint", "The node's admin endpoint (http://host:port).").Required().String()
	ctlOutput := ctlCmd.Flag("output", "Output format: text or json.").Short('o').Enum("text", "json")
	ctlArgs := ctlCmd.Arg("command", "The zmyctl command, e.g. status --quorum.").Required().Strings()

	faultCmd := app.Command("fault", "Inject a fault: partition n1,n2,n3/n4,n5 | heal | kill N | restart N | "+
		"clock N +800ms | firewall N on|off | ctl N ok|fail|hang | slow N 300ms [COMMAND WORDS] | load R | force-write N.")
	faultAdmin := faultCmd.Flag("admin-address", "The simulator's control API.").Required().String()
	faultArgs := faultCmd.Arg("fault", "The fault and its arguments.").Required().Strings()

	nodesCmd := app.Command("nodes", "Print every node's endpoints and role as JSON.")
	nodesAdmin := nodesCmd.Flag("admin-address", "The simulator's control API.").Required().String()
	auditCmd := app.Command("audit", "Print every zmyctl command the nodes received, as JSON lines.")
	auditAdmin := auditCmd.Flag("admin-address", "The simulator's control API.").Required().String()
	invCmd := app.Command("invariants", "Print invariant violations as JSON; exit 1 if any.")
	invAdmin := invCmd.Flag("admin-address", "The simulator's control API.").Required().String()

	benchCmd := app.Command("bench", "Measure the simulator holding many nodes under write load.")
	var bo sim.BenchOptions
	benchCmd.Flag("nodes", "Nodes.").Default("200").IntVar(&bo.Nodes)
	benchCmd.Flag("write-rate", "Writes per second.").Default("1000").Float64Var(&bo.WriteRate)
	benchCmd.Flag("duration", "How long to hold the load.").Default("20s").DurationVar(&bo.Duration)
	benchCmd.Flag("scrapes", "Scrapes of one node's /metrics to time.").Default("200").IntVar(&bo.Scrapes)

	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "zmysim: %v\n", err)
		if cmd == ctlCmd.FullCommand() || (len(args) > 0 && args[0] == "ctl") {
			return zmy.ExitUsage
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch cmd {
	case runCmd.FullCommand():
		return runCluster(ctx, ro, stdout, stderr)
	case ctlCmd.FullCommand():
		words := *ctlArgs
		if *ctlOutput != "" {
			words = append(words, "-o", *ctlOutput)
		}
		return sim.RunCtl(ctx, *ctlEndpoint, words, stdout, stderr)
	case faultCmd.FullCommand():
		return report(stderr, sim.NewAdminClient(*faultAdmin).Fault(ctx, *faultArgs...))
	case nodesCmd.FullCommand():
		nodes, err := sim.NewAdminClient(*nodesAdmin).Nodes(ctx)
		if err != nil {
			return report(stderr, err)
		}
		return printJSON(stdout, stderr, nodes)
	case auditCmd.FullCommand():
		raw, err := sim.NewAdminClient(*auditAdmin).AuditRaw(ctx)
		if err != nil {
			return report(stderr, err)
		}
		_, _ = stdout.Write(raw)
		return 0
	case invCmd.FullCommand():
		vs, err := sim.NewAdminClient(*invAdmin).Invariants(ctx)
		if err != nil {
			return report(stderr, err)
		}
		if code := printJSON(stdout, stderr, vs); code != 0 {
			return code
		}
		if len(vs) > 0 {
			return 1
		}
		return 0
	case benchCmd.FullCommand():
		res, err := sim.RunBench(ctx, bo)
		if err != nil {
			return report(stderr, err)
		}
		return printJSON(stdout, stderr, res)
	}
	return 2
}

type runOptions struct {
	opts            sim.Options
	etcd            string
	responderConfig string
	alertmanager    string
	driver          string
	sdFile          string
	readyFile       string
	logLevel        string
}

func runCluster(ctx context.Context, ro runOptions, stdout, stderr io.Writer) int {
	var level slog.Level
	if err := level.UnmarshalText([]byte(ro.logLevel)); err != nil {
		return report(stderr, fmt.Errorf("--log.level: %w", err))
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ro.opts.Logger = logger
	if os.Getenv("GOGC") == "" {
		// A few MiB of live model and a request load that allocates (hundreds of scrapes and
		// admin calls per probe round on a large cluster): as the responder does, trade a few
		// MiB for far fewer collections. The simulated nodes share the machine with the
		// responder under test, so their CPU shows in its benchmarks.
		debug.SetGCPercent(400)
	}
	if ro.etcd != "" {
		ro.opts.EtcdEndpoints = strings.Split(ro.etcd, ",")
	}
	c, err := sim.Start(ctx, ro.opts)
	if err != nil {
		return report(stderr, err)
	}
	defer c.Close()

	if ro.responderConfig != "" {
		self, err := os.Executable()
		if err == nil {
			self, err = filepath.Abs(self)
		}
		if err != nil {
			return report(stderr, fmt.Errorf("find this binary for the responder config: %w", err))
		}
		cfg, err := c.ResponderConfig(sim.ResponderConfigOptions{Zmysim: self, AlertmanagerURL: ro.alertmanager, Driver: ro.driver})
		if err == nil {
			err = sim.WriteFileAtomic(ro.responderConfig, cfg)
		}
		if err != nil {
			return report(stderr, err)
		}
	}
	if ro.sdFile != "" {
		sd, err := c.PrometheusSD()
		if err == nil {
			err = sim.WriteFileAtomic(ro.sdFile, sd)
		}
		if err != nil {
			return report(stderr, err)
		}
	}
	ready, err := json.Marshal(c.Endpoints())
	if err != nil {
		return report(stderr, fmt.Errorf("encode ready line: %w", err))
	}
	ready = append(ready, '\n')
	// The ready file comes last: whoever waits for it may rely on the other files.
	if ro.readyFile != "" {
		if err := sim.WriteFileAtomic(ro.readyFile, ready); err != nil {
			return report(stderr, err)
		}
	}
	_, _ = stdout.Write(ready)
	logger.Info("cluster running", "cluster", ro.opts.Cluster, "nodes", ro.opts.Nodes, "admin", c.AdminAddress())
	<-ctx.Done()
	logger.Info("shutting down")
	start := time.Now()
	_ = c.Close()
	logger.Debug("closed", "took", time.Since(start))
	return 0
}

func printJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return report(stderr, fmt.Errorf("print JSON: %w", err))
	}
	return 0
}

func report(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "zmysim: %v\n", err)
	return 1
}
