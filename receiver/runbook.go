package receiver

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"github.com/zmyorg/zmy-responder/detect"
	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/ha"
	"github.com/zmyorg/zmy-responder/remediate"
)

// RunbookEnv is what a runbook is built from.
type RunbookEnv struct {
	Config     *config.Config
	Store      remediate.Store
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Replica names this responder: in ZMY_ACTOR, and among replicas.
	Replica string
	// Etcd is the shared store's etcd client when replicas share the journal (nil with the
	// embedded journal); the clusters' leaderships are elected on it, under Prefix, on a
	// session of LeaseTTL.
	Etcd     *clientv3.Client
	Prefix   string
	LeaseTTL time.Duration
}

// scanEvery is how often a replica sharing the journal looks for incidents and aborts another
// replica journaled on a cluster it leads; with etcd it looks at once on the store's watch, and
// this is the backstop for changes made while the watch was down.
const scanEvery = 2 * time.Second

// DefaultRunbook is Run's NewRunbook when none is given: detect's prober wired into remediate's
// engine, and with a shared journal the per-cluster leadership (internal/ha) that decides which
// replica probes and acts on which cluster. The loop runs the engine (which resumes open
// incidents first), the prober's watch mode and the elections; a reload reaches them all
// through PrepareConfig.
func DefaultRunbook(env RunbookEnv) (Runbook, func(context.Context) error, error) {
	logger := env.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var (
		lead    remediate.Leadership
		elector *ha.Elector
		engine  *remediate.Engine
		scan    time.Duration
		changes func(context.Context) <-chan struct{}
	)
	if env.Etcd != nil {
		var err error
		elector, err = ha.NewElector(ha.Options{Client: env.Etcd, Prefix: env.Prefix, Replica: env.Replica, TTL: env.LeaseTTL,
			Busy:       func(cluster string) bool { return engine != nil && engine.Busy(cluster) },
			Registerer: env.Registerer, Logger: logger.With("component", "ha")})
		if err != nil {
			return nil, nil, err
		}
		elector.SetClusters(clusterNames(env.Config))
		lead, scan = elector, scanEvery
		if w, ok := env.Store.(interface {
			Changes(context.Context) <-chan struct{}
		}); ok {
			changes = w.Changes
		}
	}
	watching := func(string) bool { return true }
	if lead != nil {
		watching = func(cluster string) bool { _, err := lead.Acting(cluster); return err == nil }
	}
	p := detect.NewProber(env.Config, detect.Options{Registerer: env.Registerer, Logger: logger.With("component", "detect"),
		Watching: watching})
	e, err := remediate.NewEngine(env.Config, env.Store, p, remediate.Options{
		Registerer: env.Registerer, Logger: logger.With("component", "remediate"),
		Failpoint: failpointFromEnv(logger), Replica: env.Replica, Leadership: lead, Scan: scan, Changes: changes,
	})
	if err != nil {
		return nil, nil, err
	}
	engine = e
	loop := func(ctx context.Context) error {
		defer p.Close()
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { p.Run(gctx); return nil })
		g.Go(func() error { return e.Run(gctx) })
		if elector != nil {
			g.Go(func() error { return elector.Run(gctx) })
		}
		return g.Wait()
	}
	return &wiredRunbook{Engine: e, prober: p, elector: elector}, loop, nil
}

func clusterNames(cfg *config.Config) []string {
	out := make([]string, len(cfg.Clusters))
	for i, c := range cfg.Clusters {
		out[i] = c.Name
	}
	return out
}

// wiredRunbook is the engine as the API sees it, plus what it must reconfigure.
type wiredRunbook struct {
	*remediate.Engine
	prober  *detect.Prober
	elector *ha.Elector // nil with the embedded journal
}

// PrepareConfig builds the engine's part of a reloaded config; commit swaps it into the engine,
// the prober and the elections together.
func (w *wiredRunbook) PrepareConfig(cfg *config.Config) (func(), error) {
	commit, err := w.Engine.PrepareConfig(cfg)
	if err != nil {
		return nil, err
	}
	return func() {
		w.prober.SetConfig(cfg)
		commit()
		if w.elector != nil {
			w.elector.SetClusters(clusterNames(cfg))
		}
	}, nil
}

// FailpointEnv names a runbook failpoint ("name" or "name#N" for its Nth hit) at which the
// process kills itself with SIGKILL. Test-only: the crash tests use it to die exactly between
// two steps, or in the middle of one, and check that a restart completes the incident.
const FailpointEnv = "ZMY_RESPONDER_FAILPOINT"

func failpointFromEnv(logger *slog.Logger) func(string) {
	spec := os.Getenv(FailpointEnv)
	if spec == "" {
		return nil
	}
	name, nth := spec, int64(1)
	if i := strings.LastIndexByte(spec, '#'); i >= 0 {
		if n, err := strconv.ParseInt(spec[i+1:], 10, 64); err == nil && n > 0 {
			name, nth = spec[:i], n
		}
	}
	var hits atomic.Int64
	logger.Warn("test failpoint armed: the process will SIGKILL itself", "failpoint", name, "hit", nth)
	return func(at string) {
		if at == name && hits.Add(1) == nth {
			logger.Warn("failpoint reached: SIGKILL", "failpoint", at)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // never returns: the signal is on its way
		}
	}
}
