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

func run() int {
	app := kingpin.New("zmy-responder", "Confirms ZMY split-brains reported by Alertmanager and runs the recovery runbook.")
	var (
		configFile  = app.Flag("config.file", "zmy-responder configuration file.").Default("zmy-responder.yml").String()
		configCheck = app.Flag("config.check", "Validate the configuration file, print OK or the error, and exit.").Bool()
		listenFlag  = app.Flag("web.listen-address", "Address for the HTTP API, webhook and metrics.").Default(receiver.DefaultListenAddress)
		listen      = listenFlag.String()
		webConfig   = app.Flag("web.config.file", "exporter-toolkit web configuration file (TLS, basic auth).").Default("").String()
		grpcListen  = app.Flag("grpc.listen-address", "Address for gRPC health (grpc.health.v1); empty disables it.").Default(":9096").String()
		storage     = app.Flag("storage.path", "Directory of the incident journal (--storage.backend=bbolt).").Default("data/").String()
		backend     = app.Flag("storage.backend", "Incident store: bbolt (a file in --storage.path, one replica) or etcd (shared by every replica).").Default(receiver.StorageBBolt).Enum(receiver.StorageBBolt, receiver.StorageEtcd)
		etcdURLs    = app.Flag("storage.etcd.endpoints", "etcd client URLs, comma-separated (--storage.backend=etcd); TLS and credentials are in the config file's storage section.").String()
		etcdPrefix  = app.Flag("storage.etcd.prefix", "Key prefix of the incident store in etcd: replicas with the same prefix share incidents.").Default("/zmy-responder/").String()
		replica     = app.Flag("ha.replica", "This replica's name among the replicas sharing an etcd store, and in ZMY_ACTOR (default: the host name).").Default("").String()
		leaseTTL    = app.Flag("ha.lease-ttl", "TTL of a replica's leadership session in etcd: a dead leader's clusters go to another replica this long after its last keepalive.").Default("10s").Duration()
	)
	logCfg := &promslog.Config{}
	promslogflag.AddFlags(app, logCfg)
	app.Version(version.Print("zmy-responder"))
	app.HelpFlag.Short('h')
	listenSet := false
	listenFlag.IsSetByUser(&listenSet)
	if _, err := app.Parse(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}

	if *configCheck {
		opts := receiver.CheckOptions{ConfigFile: *configFile, WebConfigFile: *webConfig}
		if listenSet {
			opts.ListenAddress = *listen
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
	logger := promslog.New(logCfg)
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

	err := receiver.Run(ctx, receiver.Options{
		ConfigFile:        *configFile,
		WebConfigFile:     *webConfig,
		ListenAddress:     *listen,
		GRPCListenAddress: *grpcListen,
		StoragePath:       *storage,
		StorageBackend:    *backend,
		EtcdEndpoints:     splitList(*etcdURLs),
		EtcdPrefix:        *etcdPrefix,
		Replica:           *replica,
		LeaseTTL:          *leaseTTL,
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
