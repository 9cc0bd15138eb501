// Command zmy-responder receives Alertmanager's ZMY_Quorum_Down webhook, confirms the
// split-brain with its own probes and runs the recovery runbook. This file only turns flags,
// signals and the process environment into receiver.Run.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"

	"github.com/zmyorg/zmy-responder/receiver"
)

func main() { os.Exit(run()) }

// flags are the command line's values.
type flags struct {
	configFile, listen, webConfig, grpcListen string
	storage, backend, etcdURLs, etcdPrefix    string
	replica                                   string
	configCheck, listenSet                    bool
	leaseTTL, retention                       time.Duration
	log                                       promslog.Config
}

// newApp defines the command line; parsing it fills the returned flags.
func newApp() (*kingpin.Application, *flags) {
	f := &flags{}
	app := kingpin.New("zmy-responder", "Confirms ZMY split-brains reported by Alertmanager and runs the recovery runbook.")
	app.Flag("config.file", "zmy-responder configuration file.").Default("zmy-responder.yml").StringVar(&f.configFile)
	app.Flag("config.check", "Validate the configuration file, print OK or the error, and exit.").BoolVar(&f.configCheck)
	listenFlag := app.Flag("web.listen-address", "Address for the HTTP API, webhook and metrics.").Default(receiver.DefaultListenAddress)
	listenFlag.StringVar(&f.listen)
	listenFlag.IsSetByUser(&f.listenSet)
	app.Flag("web.config.file", "exporter-toolkit web configuration file (TLS, basic auth).").Default("").StringVar(&f.webConfig)
	app.Flag("grpc.listen-address", "Address for gRPC health (grpc.health.v1); empty disables it.").Default(":9096").StringVar(&f.grpcListen)
	app.Flag("storage.path", "Directory of the incident journal (--storage.backend=bbolt).").Default("data/").StringVar(&f.storage)
	app.Flag("storage.backend", "Incident store: bbolt (a file in --storage.path, one replica) or etcd (shared by every replica).").Default(receiver.StorageBBolt).EnumVar(&f.backend, receiver.StorageBBolt, receiver.StorageEtcd)
	app.Flag("storage.etcd.endpoints", "etcd client URLs, comma-separated (--storage.backend=etcd); TLS and credentials are in the config file's storage section.").StringVar(&f.etcdURLs)
	app.Flag("storage.etcd.prefix", "Key prefix of the incident store in etcd: replicas with the same prefix share incidents.").Default("/zmy-responder/").StringVar(&f.etcdPrefix)
	app.Flag("storage.retention", "How long closed incidents are kept: older ones are pruned at start and every 10 minutes (open ones never); 0 keeps every incident.").Default(receiver.DefaultRetention.String()).DurationVar(&f.retention)
	app.Flag("ha.replica", "This replica's name among the replicas sharing an etcd store, and in ZMY_ACTOR (default: the host name).").Default("").StringVar(&f.replica)
	app.Flag("ha.lease-ttl", "TTL of a replica's leadership session in etcd: a dead leader's clusters go to another replica this long after its last keepalive.").Default("10s").DurationVar(&f.leaseTTL)
	promslogflag.AddFlags(app, &f.log)
	app.Version(version.Print("zmy-responder"))
	app.HelpFlag.Short('h')
	return app, f
}

// parseFlags reads the command line; a negative retention is refused here, before anything starts.
func parseFlags(args []string) (*flags, error) {
	app, f := newApp()
	if _, err := app.Parse(args); err != nil {
		return nil, err
	}
	if f.retention < 0 {
		return nil, fmt.Errorf("--storage.retention=%s: want a duration ≥ 0 (0 keeps every incident)", f.retention)
	}
	return f, nil
}

func run() int {
	f, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if f.configCheck {
		opts := receiver.CheckOptions{ConfigFile: f.configFile, WebConfigFile: f.webConfig}
		if f.listenSet {
			opts.ListenAddress = f.listen
		}
		warnings, err := receiver.CheckConfig(opts)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for _, w := range warnings {
			fmt.Fprintln(os.Stderr, "WARNING:", w)
		}
		fmt.Println("OK")
		return 0
	}

	if os.Getenv("GOGC") == "" {
		// The live heap is a few MiB while every webhook allocates its decoded payload: at the
		// default GOGC the collector runs every few hundred requests. Trading a few MiB for far
		// fewer cycles cut CPU per delivery by about a third in BENCHMARKS.md's runs.
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// …and a soft ceiling so that the laxer GC cannot let a flood of large notifications
		// balloon the heap: near it the collector works harder instead.
		debug.SetMemoryLimit(384 << 20)
	}
	logger := promslog.New(&f.log)
	logger.Info("starting zmy-responder", "version", version.Info(), "build_context", version.BuildContext())

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("zmy_responder"),
	)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			select {
			case reload <- struct{}{}:
			default: // a reload is already pending
			}
		}
	}()

	err = receiver.Run(ctx, receiver.Options{
		ConfigFile:        f.configFile,
		WebConfigFile:     f.webConfig,
		ListenAddress:     f.listen,
		GRPCListenAddress: f.grpcListen,
		StoragePath:       f.storage,
		StorageBackend:    f.backend,
		EtcdEndpoints:     splitList(f.etcdURLs),
		EtcdPrefix:        f.etcdPrefix,
		Retention:         f.retention,
		Replica:           f.replica,
		LeaseTTL:          f.leaseTTL,
		Logger:            logger,
		Registerer:        reg,
		Gatherer:          reg,
		Reload:            reload,
	})
	if err != nil {
		logger.Error("zmy-responder failed", "err", err)
		return 1
	}
	logger.Info("zmy-responder stopped")
	return 0
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
