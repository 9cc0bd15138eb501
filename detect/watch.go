package detect

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

// Run is watch mode: each cluster with a watch interval (its own, else detection.watch_interval)
// is probed on that interval, exporting partition_score, the threshold, clock offsets and probe
// results so dashboards show health without an alert; and every threshold is recomputed each
// threshold.recompute. The clusters' rounds are spread evenly over their interval rather than
// started together, so the daemon's probe budget sees a steady trickle, not one burst per
// interval. A reload restarts the loops on the new intervals. Run returns when ctx ends.
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
		for _, w := range staggered(cfg) {
			wg.Go(func() { p.watch(wctx, w.cluster, w.every, w.offset) })
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

// watchLoop is one cluster's watch: every interval, its first round offset into the interval.
type watchLoop struct {
	cluster       string
	every, offset time.Duration
}

// staggered is the watched clusters, the i-th of n starting i/n of its interval in: 20 clusters
// on 10s start a round every 0.5s.
func staggered(cfg *config.Config) []watchLoop {
	var out []watchLoop
	for _, c := range cfg.Clusters {
		if every := watchInterval(cfg, c); every > 0 {
			out = append(out, watchLoop{cluster: c.Name, every: every})
		}
	}
	for i := range out {
		out[i].offset = out[i].every * time.Duration(i) / time.Duration(len(out))
	}
	return out
}

func watchInterval(cfg *config.Config, c config.ClusterConfig) time.Duration {
	if d := time.Duration(c.WatchInterval); d > 0 {
		return d
	}
	return time.Duration(cfg.Detection.WatchInterval)
}

// watch probes one cluster every interval, the first time after offset, while this replica
// watches it. A round never outlives the interval's budget: it is bounded by the threshold like
// any Confirm, and its probes yield to urgent rounds on the daemon's probe budget.
func (p *Prober) watch(ctx context.Context, cluster string, every, offset time.Duration) {
	first := time.NewTimer(offset)
	select {
	case <-ctx.Done():
		first.Stop()
		return
	case <-first.C:
	}
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
		v, err := p.probeCluster(ctx, cluster, background)
		switch {
		case err != nil && ctx.Err() == nil:
			p.log.Warn("watch round failed", "cluster", cluster, "err", err)
		case err == nil && strings.HasPrefix(v.Reason, budgetExhausted):
			// The responder is short of probe slots, not the cluster of health: say so once a round.
			why, _, _ := strings.Cut(v.Reason, ";")
			p.log.Warn("watch round could not finish: "+budgetExhausted, "cluster", cluster, "reason", why, "duration", v.Duration)
		case err == nil:
			level := slog.LevelDebug
			failed := failedProbes(v.Evidence, 5)
			if failed != "" {
				level = slog.LevelInfo // a probe that failed is worth a line: which node, which probe, why
			}
			p.log.Log(ctx, level, "watch round", "cluster", cluster, "verdict", v.Kind, "healthy", v.Healthy,
				"partition_score", v.PartitionScore, "duration", v.Duration, "failed_probes", failed)
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

// failedProbes names the probes of a round that ran and failed, "n3/netcheck: why", at most max
// of them and a count of the rest; "" when none did.
func failedProbes(ev []incident.Evidence, max int) string {
	var out []string
	n := 0
	for _, e := range ev {
		if e.OK || e.Skipped || e.Error == "" {
			continue
		}
		n++
		if len(out) < max {
			where := e.Node
			if where == "" {
				where = "cluster"
			}
			out = append(out, where+"/"+e.Probe+": "+e.Error)
		}
	}
	if n > len(out) {
		out = append(out, fmt.Sprintf("and %d more", n-len(out)))
	}
	return strings.Join(out, "; ")
}
