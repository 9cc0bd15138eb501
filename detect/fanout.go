package detect

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/semaphore"

	"github.com/zmyorg/zmy-responder/internal/config"
)

// errNodeSilent is a node round in which no probe got an answer: what trips a node's breaker.
var errNodeSilent = errors.New("node gave no answer to any probe")

// fanOut runs probes on every node of the cluster, at most detection.concurrency nodes at once,
// each node's probes in parallel, plus the cluster-wide etcd and redis probes when asked. It
// returns when every probe is done or ctx ends, whichever is first: a node still running then is
// recorded as not having answered, so a hung node never holds the verdict past the budget.
func (p *Prober) fanOut(ctx context.Context, cs *clusterState, cfg *config.Config, probes []string, clusterWide bool) []Result {
	nodes := cs.cfg.Nodes
	var (
		mu       sync.Mutex
		slots    = make([][]Result, len(nodes)+1) // the last slot holds cluster-wide probes
		finished = make([]bool, len(nodes)+1)
		wg       sync.WaitGroup
	)
	store := func(i int, rs []Result) {
		mu.Lock()
		defer mu.Unlock()
		slots[i], finished[i] = rs, true
	}
	sem := semaphore.NewWeighted(int64(max(cfg.Detection.Concurrency, 1)))
	for i, n := range nodes {
		wg.Go(func() {
			if err := sem.Acquire(ctx, 1); err != nil {
				store(i, unanswered(n.ID, applicable(probes, n), StatusError,
					"not probed: no probe slot came free within the budget"))
				return
			}
			defer sem.Release(1)
			store(i, p.probeNode(ctx, cs, cfg, n, probes))
		})
	}
	if clusterWide {
		wg.Go(func() { store(len(nodes), p.probeDependencies(ctx, cs, cfg)) })
	} else {
		finished[len(nodes)] = true
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}

	mu.Lock()
	defer mu.Unlock()
	var out []Result
	for i, n := range nodes {
		if !finished[i] {
			slots[i] = unanswered(n.ID, applicable(probes, n), StatusError,
				fmt.Sprintf("no answer within the budget: %v", context.Cause(ctx)))
		}
		out = append(out, slots[i]...)
	}
	out = append(out, slots[len(nodes)]...)
	for _, r := range out {
		p.metrics.observe(r)
	}
	return out
}

// applicable drops the optional probes a node has no endpoint for.
func applicable(probes []string, n config.NodeConfig) []string {
	out := make([]string, 0, len(probes))
	for _, name := range probes {
		if (name == ProbeGRPC && n.GRPCAddr == "") || (name == ProbeHTTP && n.HealthURL == "") {
			continue
		}
		out = append(out, name)
	}
	return out
}

// unanswered is one result per probe for a node that was not (or not fully) probed.
func unanswered(node string, probes []string, st Status, reason string) []Result {
	out := make([]Result, len(probes))
	for i, name := range probes {
		out[i] = Result{Probe: name, Node: node, Status: st, Reason: reason}
	}
	return out
}

// probeNode runs the node's probes through its breaker: a node that stayed silent on
// consecutive_failures rounds is skipped, and says so, until the cooldown lets one round through.
func (p *Prober) probeNode(ctx context.Context, cs *clusterState, cfg *config.Config, n config.NodeConfig, probes []string) []Result {
	probes = applicable(probes, n)
	br := cs.breaker(n.ID, cfg.Detection.NodeBreaker)
	var rs []Result
	_, err := br.Execute(func() (struct{}, error) {
		rs = p.runProbes(ctx, cs, cfg, n, probes)
		if silent(rs) {
			if errors.Is(ctx.Err(), context.Canceled) {
				return struct{}{}, ctx.Err() // the caller gave up: says nothing about the node
			}
			return struct{}{}, errNodeSilent
		}
		return struct{}{}, nil
	})
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return unanswered(n.ID, probes, StatusSkipped, fmt.Sprintf(
			"node breaker %s: no answer on %d consecutive rounds; retried after %s",
			br.State(), max(cfg.Detection.NodeBreaker.ConsecutiveFailures, 1), breakerCooldown(cfg.Detection.NodeBreaker)))
	}
	return rs
}

// silent reports whether no probe other than the responder's own TCP dial got an answer.
func silent(rs []Result) bool {
	for _, r := range rs {
		if r.Probe != ProbeTCP && r.Status != StatusError {
			return false
		}
	}
	return len(rs) > 0
}

// runProbes runs a node's probes in parallel, each within probe_timeout and ctx.
func (p *Prober) runProbes(ctx context.Context, cs *clusterState, cfg *config.Config, n config.NodeConfig, probes []string) []Result {
	t := Target{Cluster: &cs.cfg, Node: n, Zmyctl: cs.driver, HTTP: p.http}
	out := make([]Result, len(probes))
	var wg sync.WaitGroup
	for i, name := range probes {
		if cs.driverErr != nil && usesZmyctl(name) {
			out[i] = Result{Probe: name, Node: n.ID, Status: StatusError, Err: cs.driverErr, Reason: cs.driverErr.Error()}
			continue
		}
		wg.Go(func() {
			pctx, cancel := probeContext(ctx, cfg)
			defer cancel()
			out[i] = run(pctx, name, t)
		})
	}
	wg.Wait()
	return out
}

func probeContext(ctx context.Context, cfg *config.Config) (context.Context, context.CancelFunc) {
	if d := time.Duration(cfg.Detection.ProbeTimeout); d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

func usesZmyctl(probe string) bool {
	return probe == ProbeControl || probe == ProbeRaftState || probe == ProbeNetcheck
}

// probeDependencies probes the cluster's etcd and Redis dependencies, which have no node.
func (p *Prober) probeDependencies(ctx context.Context, cs *clusterState, cfg *config.Config) []Result {
	var jobs []Target
	var names []string
	if cs.cfg.Etcd != nil {
		jobs, names = append(jobs, Target{Cluster: &cs.cfg}), append(names, ProbeEtcd)
	}
	for _, rc := range cs.cfg.Redis {
		jobs, names = append(jobs, Target{Cluster: &cs.cfg, Redis: rc}), append(names, ProbeRedis)
	}
	out := make([]Result, len(jobs))
	var wg sync.WaitGroup
	for i, t := range jobs {
		wg.Go(func() {
			pctx, cancel := probeContext(ctx, cfg)
			defer cancel()
			out[i] = run(pctx, names[i], t)
			if names[i] == ProbeRedis {
				out[i].Value = t.Redis.Name + ": " + out[i].Value
			}
		})
	}
	wg.Wait()
	return out
}

// breaker returns the node's breaker, creating it on first use.
func (cs *clusterState) breaker(node string, bc config.BreakerConfig) *gobreaker.CircuitBreaker[struct{}] {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if b, ok := cs.breakers[node]; ok {
		return b
	}
	trip := max(bc.ConsecutiveFailures, 1)
	b := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        cs.cfg.Name + "/" + node,
		Timeout:     breakerCooldown(bc),
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= trip },
		IsExcluded:  func(err error) bool { return errors.Is(err, context.Canceled) },
	})
	cs.breakers[node] = b
	return b
}

// breakerCooldown is node_breaker.cooldown, or gobreaker's own default of 60s when unset.
func breakerCooldown(bc config.BreakerConfig) time.Duration {
	if d := time.Duration(bc.Cooldown); d > 0 {
		return d
	}
	return 60 * time.Second
}
