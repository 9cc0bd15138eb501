package detect

import (
	"context"
	"sync"
	"time"

	"github.com/zmyorg/zmy-responder/internal/config"
)

// Run is watch mode: each cluster with a watch interval (its own, else detection.watch_interval)
// is probed on that interval, exporting partition_score, the threshold, clock offsets and probe
// results so dashboards show health without an alert; and every threshold is recomputed each
// threshold.recompute. A reload restarts the loops on the new intervals. Run returns when ctx ends.
func (p *Prober) Run(ctx context.Context) {
	// The config NewProber was built with is the one read below, not a reload.
	select {
	case <-p.reload:
	default:
	}
	for {
		p.mu.Lock()
		cfg := p.cfg
		p.mu.Unlock()

		wctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for _, c := range cfg.Clusters {
			if every := watchInterval(cfg, c); every > 0 {
				wg.Go(func() { p.watch(wctx, c.Name, every) })
			}
		}
		wg.Go(func() { p.recomputeThresholds(wctx, cfg) })

		select {
		case <-ctx.Done():
			cancel()
			wg.Wait()
			return
		case <-p.reload:
			cancel()
			wg.Wait()
		}
	}
}

func watchInterval(cfg *config.Config, c config.ClusterConfig) time.Duration {
	if d := time.Duration(c.WatchInterval); d > 0 {
		return d
	}
	return time.Duration(cfg.Detection.WatchInterval)
}

// watch probes one cluster every interval, while this replica watches it. A round never
// outlives the interval's budget: it is bounded by the threshold like any Confirm.
func (p *Prober) watch(ctx context.Context, cluster string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if !p.watching(cluster) {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				continue
			}
		}
		v, err := p.probeCluster(ctx, cluster)
		switch {
		case err != nil && ctx.Err() == nil:
			p.log.Warn("watch round failed", "cluster", cluster, "err", err)
		case err == nil:
			p.log.Debug("watch round", "cluster", cluster, "verdict", v.Kind, "healthy", v.Healthy,
				"partition_score", v.PartitionScore, "duration", v.Duration)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// recomputeThresholds refreshes every cluster's threshold gauge each threshold.recompute, so the
// exported value follows the heartbeat samples even between confirmations.
func (p *Prober) recomputeThresholds(ctx context.Context, cfg *config.Config) {
	every := time.Duration(cfg.Detection.Threshold.Recompute)
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for _, c := range cfg.Clusters {
			_, _ = p.Threshold(c.Name)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
