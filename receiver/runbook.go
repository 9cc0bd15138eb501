package receiver

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/zmyorg/zmy-responder/detect"
	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/remediate"
)

// DefaultRunbook is Run's NewRunbook when none is given: detect's prober wired into remediate's
// engine. The loop runs the engine (which resumes open incidents first) and the prober's watch
// mode; a reload reaches both through PrepareConfig.
func DefaultRunbook(cfg *config.Config, j remediate.Store, reg prometheus.Registerer, logger *slog.Logger) (Runbook, func(context.Context) error, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := detect.NewProber(cfg, detect.Options{Registerer: reg, Logger: logger.With("component", "detect")})
	e, err := remediate.NewEngine(cfg, j, p, remediate.Options{
		Registerer: reg, Logger: logger.With("component", "remediate"),
		Failpoint: failpointFromEnv(logger),
	})
	if err != nil {
		return nil, nil, err
	}
	loop := func(ctx context.Context) error {
		defer p.Close()
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { p.Run(gctx); return nil })
		g.Go(func() error { return e.Run(gctx) })
		return g.Wait()
	}
	return &wiredRunbook{Engine: e, prober: p}, loop, nil
}

// wiredRunbook is the engine as the API sees it, plus the prober it must reconfigure.
type wiredRunbook struct {
	*remediate.Engine
	prober *detect.Prober
}

// PrepareConfig builds the engine's part of a reloaded config; commit swaps it into the engine
// and the prober together.
func (w *wiredRunbook) PrepareConfig(cfg *config.Config) (func(), error) {
	commit, err := w.Engine.PrepareConfig(cfg)
	if err != nil {
		return nil, err
	}
	return func() {
		w.prober.SetConfig(cfg)
		commit()
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
