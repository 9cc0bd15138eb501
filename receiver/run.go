package receiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

// Options is everything Run needs; cmd/zmy-responder fills it from its flags.
type Options struct {
	ConfigFile        string // --config.file
	WebConfigFile     string // --web.config.file (exporter-toolkit: TLS, basic auth)
	ListenAddress     string // --web.listen-address
	GRPCListenAddress string // --grpc.listen-address; empty disables gRPC health
	StoragePath       string // --storage.path; the journal is <StoragePath>/journal.db
	// StorageBackend is the incident store: StorageBBolt (default) or StorageEtcd, shared by
	// replicas at EtcdEndpoints under EtcdPrefix (credentials in the config file's storage).
	StorageBackend string   // --storage.backend
	EtcdEndpoints  []string // --storage.etcd.endpoints
	EtcdPrefix     string   // --storage.etcd.prefix; default incident.DefaultEtcdPrefix
	// Retention is how long closed incidents are kept (--storage.retention, DefaultRetention):
	// older ones are pruned at start and every 10 minutes. 0 keeps every incident.
	Retention time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer // served on /metrics

	// Reload receives one value per SIGHUP.
	Reload <-chan struct{}

	// NewRunbook is where the runbook engine is wired in. It gets the first configuration, the
	// journal and the registry, and returns the Runbook the API calls and the engine's run loop,
	// which Run starts once serving and cancels after the HTTP server has drained. If the
	// Runbook is a Reconfigurer, every reload goes through its PrepareConfig.
	// Nil: DefaultRunbook (runbook.go), detect's prober wired into remediate's engine.
	NewRunbook func(env RunbookEnv) (Runbook, func(context.Context) error, error)
	// Replica names this responder (--ha.replica; default the host name) and LeaseTTL is its
	// leadership session's TTL (--ha.lease-ttl; default 10s) when replicas share an etcd store.
	Replica  string
	LeaseTTL time.Duration
	// OnReload is called with every configuration successfully reloaded.
	OnReload func(*config.Config)
	// OnReady is called once both listeners serve, with their bound addresses (grpc nil when
	// disabled): tests listen on port 0 and learn the port here.
	OnReady func(http, grpc net.Addr)
	// ShutdownTimeout bounds draining in-flight requests on shutdown. Default 15s.
	ShutdownTimeout time.Duration
	// StoreCheckInterval is how often gRPC health asks the incident store whether it answers
	// (/-/ready asks on every request). Default 5s.
	StoreCheckInterval time.Duration
}

// Run serves until ctx is cancelled, then shuts down gracefully: readiness drops, in-flight
// requests finish, the engine stops, the journal is closed. It returns an error if startup fails
// or a server dies.
func Run(ctx context.Context, opts Options) (err error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.StoreCheckInterval <= 0 {
		opts.StoreCheckInterval = 5 * time.Second
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 15 * time.Second
	}
	cfg, ex, err := preflight(opts.ConfigFile, opts.WebConfigFile, opts.ListenAddress)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings() {
		logger.Warn("configuration: " + w)
	}

	if opts.EtcdPrefix == "" {
		opts.EtcdPrefix = incident.DefaultEtcdPrefix
	}
	j, err := openStore(ctx, opts, cfg, logger)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := j.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		logger.Info("journal closed")
	}()

	if opts.Retention < 0 {
		return fmt.Errorf("--storage.retention=%s: want a duration ≥ 0 (0 keeps every incident)", opts.Retention)
	}
	ret, err := newRetention(opts.Registerer, j, opts.Retention, logger)
	if err != nil {
		return fmt.Errorf("register journal metrics: %w", err)
	}

	srv, err := NewServer(cfg, ServerOptions{
		Journal: j, Logger: logger, Registerer: opts.Registerer, Gatherer: opts.Gatherer,
	})
	if err != nil {
		return err
	}
	rel, err := newReloader(opts.ConfigFile, ex, srv, logger, opts.Registerer)
	if err != nil {
		return err
	}
	srv.reload = rel.reload

	// ─── Runbook engine wiring point ───
	if opts.NewRunbook == nil {
		opts.NewRunbook = DefaultRunbook // runbook.go: detect's prober + remediate's engine
	}
	if opts.Replica == "" {
		opts.Replica, _ = os.Hostname()
	}
	env := RunbookEnv{Config: cfg, Store: j, Registerer: opts.Registerer, Logger: logger, Replica: opts.Replica,
		Prefix: opts.EtcdPrefix, LeaseTTL: opts.LeaseTTL}
	if es, ok := j.(*incident.EtcdStore); ok {
		env.Etcd = es.Client() // replicas share the journal: clusters are led one replica each
	}
	rb, engineLoop, err := opts.NewRunbook(env)
	if err != nil {
		return fmt.Errorf("start runbook engine: %w", err)
	}
	srv.SetRunbook(rb)
	if rc, ok := rb.(Reconfigurer); ok {
		rel.prepare = append(rel.prepare, rc.PrepareConfig)
	}
	if opts.OnReload != nil {
		rel.onReload = append(rel.onReload, opts.OnReload)
	}

	httpLn, err := net.Listen("tcp", opts.ListenAddress)
	if err != nil {
		return fmt.Errorf("listen on --web.listen-address %s: %w", opts.ListenAddress, err)
	}
	var grpcLn net.Listener
	if opts.GRPCListenAddress != "" {
		if grpcLn, err = net.Listen("tcp", opts.GRPCListenAddress); err != nil {
			_ = httpLn.Close()
			return fmt.Errorf("listen on --grpc.listen-address %s: %w", opts.GRPCListenAddress, err)
		}
	}
	return serve(ctx, opts, logger, srv, rel, ret, engineLoop, httpLn, grpcLn)
}

func serve(ctx context.Context, opts Options, logger *slog.Logger, srv *Server, rel *reloader, ret *retention,
	engineLoop func(context.Context) error, httpLn, grpcLn net.Listener) error {
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	hc := health.NewServer()
	hc.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hc)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		falseFlag, webCfg := false, opts.WebConfigFile
		addrs := []string{opts.ListenAddress}
		err := web.Serve(httpLn, hs, &web.FlagConfig{WebListenAddresses: &addrs, WebSystemdSocket: &falseFlag, WebConfigFile: &webCfg}, logger)
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("http server: %w", err)
	})
	if grpcLn != nil {
		g.Go(func() error {
			if err := gs.Serve(grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				return fmt.Errorf("grpc server: %w", err)
			}
			return nil
		})
	}
	// The engine outlives the HTTP server by a little: a webhook still draining may Kick it.
	engineCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	defer stopEngine()
	var engineDone chan error // nil without an engine: never ready in the selects below
	if engineLoop != nil {
		engineDone = make(chan error, 1)
		go func() { engineDone <- engineLoop(engineCtx) }()
	}
	reloadCtx, stopReloads := context.WithCancel(gctx)
	defer stopReloads()
	g.Go(func() error {
		for {
			select {
			case <-reloadCtx.Done():
				return nil
			case <-opts.Reload:
				_ = rel.reload() // logged and counted by reload
			}
		}
	})

	// Pruning runs beside ingest, in short transactions, and stops with the reloads at shutdown.
	g.Go(func() error {
		tick := time.NewTicker(pruneEvery)
		defer tick.Stop()
		ret.run(reloadCtx, tick.C)
		return nil
	})

	srv.SetReady(true)
	hc.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	// gRPC health says what /-/ready says: NOT_SERVING while the incident store does not answer
	// (etcd without a quorum), so that a load balancer or a Kubernetes gRPC probe stops
	// sending webhooks that could only be answered 503.
	g.Go(func() error {
		followStore(reloadCtx, srv.j, opts.StoreCheckInterval, func(ok bool) {
			if ok {
				hc.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
			} else {
				hc.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
			}
		})
		return nil
	})
	var grpcAddr net.Addr
	if grpcLn != nil {
		grpcAddr = grpcLn.Addr()
	}
	logger.Info("zmy-responder ready", append([]any{"http", httpLn.Addr().String(), "grpc", addrString(grpcAddr),
		"clusters", len(srv.Config().Clusters)}, describeStorage(opts)...)...)
	if opts.OnReady != nil {
		opts.OnReady(httpLn.Addr(), grpcAddr)
	}

	var engineErr error
	select {
	case <-gctx.Done():
	case err := <-engineDone:
		// The engine ending on its own is a failure: without it alerts would only pile up.
		if err == nil {
			err = errors.New("its run loop returned")
		}
		engineErr = fmt.Errorf("runbook engine stopped unexpectedly: %w", err)
		engineDone = nil
	}

	logger.Info("shutting down")
	stopReloads()
	srv.SetReady(false)
	hc.Shutdown()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		logger.Warn("in-flight HTTP requests did not finish in time", "err", err)
		_ = hs.Close()
	}
	// Health Watch streams never end on their own; give them a moment, not the whole timeout.
	gctxStop, cancelStop := context.WithTimeout(sctx, 2*time.Second)
	stopGRPC(gctxStop, gs)
	cancelStop()
	stopEngine()
	if engineDone != nil {
		select {
		case err := <-engineDone:
			if err != nil && !errors.Is(err, context.Canceled) {
				engineErr = fmt.Errorf("runbook engine: %w", err)
			}
		case <-sctx.Done():
			engineErr = errors.New("runbook engine did not stop in time")
		}
	}
	return errors.Join(g.Wait(), engineErr)
}

// stopGRPC stops gracefully, or hard when ctx ends first.
func stopGRPC(ctx context.Context, gs *grpc.Server) {
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		gs.Stop()
		<-done
	}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// followStore pings the store every interval until ctx ends and reports each change of its
// reachability to set (never more often than it changes).
func followStore(ctx context.Context, store interface{ Ping(context.Context) error }, interval time.Duration, set func(ok bool)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, max(interval, time.Second))
		ok := store.Ping(pctx) == nil
		cancel()
		if ctx.Err() != nil {
			return
		}
		if ok != last {
			set(ok)
			last = ok
		}
	}
}
