package detect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// Options are NewProber's dependencies. The zero value works.
type Options struct {
	Registerer prometheus.Registerer // detect's metrics and the driver's; nil registers nothing
	Logger     *slog.Logger
	HTTPClient *http.Client     // for /metrics and /healthz; default: keep-alive client, no global timeout
	Now        func() time.Time // verdict timestamps, threshold window and fuse; default time.Now
	// Watching says whether this replica watches a cluster (its leader, when replicas share the
	// journal): watch mode skips the others. Nil: every cluster.
	Watching func(cluster string) bool
}

// Prober confirms split-brains. It keeps, per cluster, the dynamic threshold, the clock fuse and
// the per-node breakers across calls and across SetConfig.
type Prober struct {
	log      *slog.Logger
	watching func(cluster string) bool
	http     *http.Client
	now      func() time.Time
	reg      prometheus.Registerer
	metrics  *metrics
	grpc     GRPCPool // gRPC health connections, one per node address, kept across rounds

	mu       sync.Mutex
	cfg      *config.Config
	clusters map[string]*clusterState
	reload   chan struct{}
}

// clusterState is one cluster under one config.
type clusterState struct {
	cfg       config.ClusterConfig
	driver    Zmyctl
	driverErr error // the argv template did not render; every zmyctl probe reports it
	*memory
}

// memory is what the prober learns of a cluster over time. It outlives reloads: a round still
// running under the old config keeps teaching the same memory.
type memory struct {
	mu        sync.Mutex // guards the fields below
	threshold thresholdState
	fuse      FuseState
	breakers  map[string]*gobreaker.TwoStepCircuitBreaker[struct{}]
	breakerBy config.BreakerConfig
}

// NewProber builds a prober for cfg.
func NewProber(cfg *config.Config, opts Options) *Prober {
	p := &Prober{
		log: opts.Logger, http: opts.HTTPClient, now: opts.Now, reg: opts.Registerer, watching: opts.Watching,
		metrics:  newMetrics(opts.Registerer, opts.Now),
		clusters: map[string]*clusterState{},
		reload:   make(chan struct{}, 1),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.watching == nil {
		p.watching = func(string) bool { return true }
	}
	if p.http == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 1024, 4
		// Uncompressed: a round scrapes every node, and gzip cost both ends more CPU than the
		// bytes it saved (a node of a 200-node cluster serves ~19 KB of /metrics).
		tr.DisableCompression = true
		p.http = &http.Client{Transport: tr}
	}
	p.SetConfig(cfg)
	return p
}

// SetConfig swaps in a reloaded config. Thresholds, fuse state and breakers of clusters and nodes
// that remain are kept; those of removed ones are dropped; watch loops restart on the new intervals.
func (p *Prober) SetConfig(cfg *config.Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	next := make(map[string]*clusterState, len(cfg.Clusters))
	for _, c := range cfg.Clusters {
		cs := &clusterState{cfg: c, memory: &memory{}}
		if old, ok := p.clusters[c.Name]; ok {
			cs.memory = old.memory
		}
		cs.mu.Lock()
		cs.fuse = cs.fuse.forget(func(n string) bool { return hasNode(&c, n) })
		if cs.breakers == nil || cs.breakerBy != cfg.Detection.NodeBreaker {
			// New settings: start every breaker afresh.
			cs.breakers = map[string]*gobreaker.TwoStepCircuitBreaker[struct{}]{}
			cs.breakerBy = cfg.Detection.NodeBreaker
		}
		for id := range cs.breakers {
			if !hasNode(&c, id) {
				delete(cs.breakers, id)
			}
		}
		cs.mu.Unlock()
		d, err := zmy.ForCluster(cfg, c, p.reg)
		if err != nil {
			cs.driverErr = fmt.Errorf("cluster %s: zmyctl driver: %w", c.Name, err)
			p.log.Error("zmyctl driver unusable; control and netcheck probes will fail", "cluster", c.Name, "err", err)
		} else {
			cs.driver = d
		}
		next[c.Name] = cs
	}
	p.grpc.Retain(func(addr string) bool {
		for _, c := range cfg.Clusters {
			for _, n := range c.Nodes {
				if n.GRPCAddr == addr {
					return true
				}
			}
		}
		return false
	})
	p.metrics.setClusters(p.cfg, cfg)
	p.cfg, p.clusters = cfg, next
	for _, cs := range next {
		p.currentThreshold(cs, cfg) // export the threshold from the start, not after the first round
	}
	select {
	case p.reload <- struct{}{}:
	default:
	}
}

// Close releases the connections the prober keeps to nodes. A round still running, or one
// started later, dials what it needs and closes it afterwards.
func (p *Prober) Close() { p.grpc.Close() }

// state returns the current config and the named cluster's state.
func (p *Prober) state(name string) (*config.Config, *clusterState, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cs, ok := p.clusters[name]
	if !ok {
		return p.cfg, nil, fmt.Errorf("cluster %q: %w", name, incident.ErrUnknownCluster)
	}
	return p.cfg, cs, nil
}

// Threshold is the cluster's current split-brain threshold, recomputed if due.
func (p *Prober) Threshold(cluster string) (time.Duration, error) {
	cfg, cs, err := p.state(cluster)
	if err != nil {
		return 0, err
	}
	return p.currentThreshold(cs, cfg), nil
}

func (p *Prober) currentThreshold(cs *clusterState, cfg *config.Config) time.Duration {
	cs.mu.Lock()
	d, recomputed := cs.threshold.current(p.now(), cfg.Detection.Threshold)
	cs.mu.Unlock()
	if recomputed {
		p.metrics.threshold.WithLabelValues(cs.cfg.Name).Set(d.Seconds())
	}
	return d
}

// budgetContext bounds a probe round by the threshold, keeping a small margin for the verdict
// itself so the whole call finishes within the budget (or ctx's earlier deadline).
func budgetContext(ctx context.Context, budget time.Duration) (context.Context, context.CancelFunc) {
	margin := min(max(budget/20, 5*time.Millisecond), 100*time.Millisecond)
	return context.WithTimeout(ctx, budget-margin)
}

// Confirm probes every node of the cluster now and decides. It never mutates the cluster.
// It returns an error only for an unknown cluster or when ctx was cancelled; a probe that fails
// is evidence, not an error.
func (p *Prober) Confirm(ctx context.Context, cluster string) (*incident.Verdict, error) {
	v, err := p.probeCluster(ctx, cluster)
	if err != nil {
		return nil, err
	}
	p.metrics.verdicts.WithLabelValues(string(v.Kind)).Inc()
	p.log.Info("split-brain verdict", "cluster", cluster, "verdict", v.Kind, "reason", v.Reason,
		"partition_score", v.PartitionScore, "duration", v.Duration)
	return v, nil
}

// probeCluster is one full probe round and its verdict; Confirm and watch mode share it.
func (p *Prober) probeCluster(ctx context.Context, cluster string) (*incident.Verdict, error) {
	start := time.Now()
	cfg, cs, err := p.state(cluster)
	if err != nil {
		return nil, fmt.Errorf("confirm: %w", err)
	}
	at := p.now()
	budget := p.currentThreshold(cs, cfg)
	bctx, cancel := budgetContext(ctx, budget)
	defer cancel()

	// `raft state` is not run: `status --quorum` reports the same leader_id and term, and the
	// node's role adds nothing to the verdict, while every zmyctl exec costs a process start.
	probes := []string{ProbeControl, ProbeData, ProbeTCP, ProbeNetcheck, ProbeClock, ProbeHTTP, ProbeGRPC}
	results := p.fanOut(bctx, cs, cfg, probes, withDependencies)
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil, fmt.Errorf("confirm %s: %w", cluster, ctx.Err())
	}

	fuse := p.learn(cs, cfg, results)
	v := decide(results, decideParams{
		Nodes: nodeIDs(cs.cfg), ShardTolerance: cfg.Detection.ShardTolerance,
		RootCauseScore: cfg.Detection.RootCauseScore, Threshold: budget, Fuse: cfg.Detection.ClockFuse, At: at,
	}, fuse)
	v.Duration = time.Since(start)
	p.metrics.partition.set(cluster, v.PartitionScore, at, results)
	return &v, nil
}

// learn feeds a round's readings to the threshold and the fuse and exports them. It returns the
// fuse state the verdict is decided under.
func (p *Prober) learn(cs *clusterState, cfg *config.Config, results []Result) FuseState {
	now := p.now()
	var readings []ClockReading
	cs.mu.Lock()
	for _, r := range results {
		switch d := r.Data.(type) {
		case *zmy.NodeMetrics:
			rtts := make([]float64, 0, len(d.PeerRTT))
			for _, v := range d.PeerRTT {
				rtts = append(rtts, v)
			}
			cs.threshold.observe(now, rtts, d.SyncLag, true, cfg.Detection.Threshold)
		case *ClockReading:
			readings = append(readings, *d)
		}
	}
	cs.fuse = cs.fuse.observe(readings, cfg.Detection.ClockFuse)
	fuse := cs.fuse
	cs.mu.Unlock()

	for _, rd := range readings {
		p.metrics.clockOffset.WithLabelValues(cs.cfg.Name, rd.Node).Set(rd.Offset.Seconds())
	}
	tripped := 0.0
	if fuse.Tripped(cfg.Detection.ClockFuse) {
		tripped = 1
	}
	p.metrics.fuseTripped.WithLabelValues(cs.cfg.Name).Set(tripped)
	return fuse
}

func nodeIDs(c config.ClusterConfig) []string {
	ids := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		ids[i] = n.ID
	}
	return ids
}
