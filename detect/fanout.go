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
// returns when every probe is done or ctx ends, whichever is first: a probe still running then is
// recorded as not having answered, so a hung node never holds the verdict past the budget. The
// probes themselves get a deadline slightly earlier than ctx's, so that a probe that honours it
// reports its own reason ("status n3: timed out") rather than being cut off by the collector.
func (p *Prober) fanOut(ctx context.Context, cs *clusterState, cfg *config.Config, probes []string, clusterWide bool) []Result {
	nodes := cs.cfg.Nodes
	col := newCollector(len(nodes) + 1) // the last row holds cluster-wide probes
	pctx, cancel := earlier(ctx)
	defer cancel()

	var wg sync.WaitGroup
	sem := semaphore.NewWeighted(int64(max(cfg.Detection.Concurrency, 1)))
	for i, n := range nodes {
		names := applicable(probes, n)
		col.expect(i, n.ID, names)
		wg.Go(func() {
			if err := sem.Acquire(pctx, 1); err != nil {
				for j, r := range unanswered(n.ID, names, StatusError, "not probed: no probe slot came free within the budget") {
					col.put(i, j, r)
				}
				return
			}
			defer sem.Release(1)
			p.probeNode(pctx, cs, cfg, n, names, func(j int, r Result) { col.put(i, j, r) })
		})
	}
	if clusterWide {
		targets, names := dependencies(cs)
		col.expect(len(nodes), "", names)
		for j, t := range targets {
			wg.Go(func() {
				tctx, cancel := probeContext(pctx, cfg)
				defer cancel()
				r := run(tctx, names[j], t)
				if names[j] == ProbeRedis {
					r.Value = t.Redis.Name + ": " + r.Value
				}
				col.put(len(nodes), j, r)
			})
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	out := col.collect(fmt.Sprintf("no answer within the budget: %v", context.Cause(ctx)))
	for _, r := range out {
		p.metrics.observe(r)
	}
	return out
}

// earlier derives the probes' context: ctx's deadline less a grace for reporting back.
func earlier(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	grace := min(max(time.Until(dl)/50, 2*time.Millisecond), 50*time.Millisecond)
	return context.WithDeadline(ctx, dl.Add(-grace))
}

// collector gathers results as each probe finishes, so a probe still running when the budget
// ends costs only its own answer, not its node's.
type collector struct {
	mu     sync.Mutex
	rows   [][]Result
	set    [][]bool
	closed bool
}

func newCollector(rows int) *collector {
	return &collector{rows: make([][]Result, rows), set: make([][]bool, rows)}
}

// expect declares row i's probes before any goroutine may put into it.
func (c *collector) expect(i int, node string, names []string) {
	c.rows[i] = unanswered(node, names, StatusError, "")
	c.set[i] = make([]bool, len(names))
}

func (c *collector) put(i, j int, r Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.rows[i][j], c.set[i][j] = r, true
	}
}

// collect closes the collector and returns every result, unset ones carrying reason.
func (c *collector) collect(reason string) []Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var out []Result
	for i, row := range c.rows {
		for j, r := range row {
			if !c.set[i][j] {
				r.Reason = reason
			}
			out = append(out, r)
		}
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

// probeNode runs the node's probes through its breaker, handing each result to put as it
// comes: a node that stayed silent on consecutive_failures rounds is skipped, and says so, until
// the cooldown lets one round through.
func (p *Prober) probeNode(ctx context.Context, cs *clusterState, cfg *config.Config, n config.NodeConfig, probes []string, put func(int, Result)) {
	br := cs.breaker(n.ID, cfg.Detection.NodeBreaker)
	_, err := br.Execute(func() (struct{}, error) {
		rs := p.runProbes(ctx, cs, cfg, n, probes, put)
		if silent(rs) {
			if errors.Is(ctx.Err(), context.Canceled) {
				return struct{}{}, ctx.Err() // the caller gave up: says nothing about the node
			}
			return struct{}{}, errNodeSilent
		}
		return struct{}{}, nil
	})
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		reason := fmt.Sprintf("node breaker %s: no answer on %d consecutive rounds; retried after %s",
			br.State(), max(cfg.Detection.NodeBreaker.ConsecutiveFailures, 1), breakerCooldown(cfg.Detection.NodeBreaker))
		for j, r := range unanswered(n.ID, probes, StatusSkipped, reason) {
			put(j, r)
		}
	}
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
func (p *Prober) runProbes(ctx context.Context, cs *clusterState, cfg *config.Config, n config.NodeConfig, probes []string, put func(int, Result)) []Result {
	t := Target{Cluster: &cs.cfg, Node: n, Zmyctl: cs.driver, HTTP: p.http}
	out := make([]Result, len(probes))
	var wg sync.WaitGroup
	for i, name := range probes {
		if cs.driverErr != nil && usesZmyctl(name) {
			out[i] = Result{Probe: name, Node: n.ID, Status: StatusError, Err: cs.driverErr, Reason: cs.driverErr.Error()}
			put(i, out[i])
			continue
		}
		wg.Go(func() {
			pctx, cancel := probeContext(ctx, cfg)
			defer cancel()
			out[i] = run(pctx, name, t)
			put(i, out[i])
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

// dependencies are the cluster's etcd and Redis targets, which have no node.
func dependencies(cs *clusterState) ([]Target, []string) {
	var targets []Target
	var names []string
	if cs.cfg.Etcd != nil {
		targets, names = append(targets, Target{Cluster: &cs.cfg}), append(names, ProbeEtcd)
	}
	for _, rc := range cs.cfg.Redis {
		targets, names = append(targets, Target{Cluster: &cs.cfg, Redis: rc}), append(names, ProbeRedis)
	}
	return targets, names
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
