package detect

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/semaphore"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

var (
	// errNodeSilent is a node round in which no probe got an answer: what trips a node's breaker.
	errNodeSilent = errors.New("node gave no answer to any probe")
	// errNotProbed is a round in which the node never got a probe slot: our budget, not its fault.
	errNotProbed = errors.New("node not probed")
)

// zmyctlProbes exec zmyctl through the driver.
var zmyctlProbes = []string{ProbeControl, ProbeRaftState, ProbeNetcheck}

// firstPhase is the /metrics probes (data plane and clock, which share one scrape), run on every
// node before anything else: shard indexes that move with every write are then compared at
// nearly one instant, and clock readings keep a small round trip, rather than both being spread
// over an exec storm.
func firstPhase(probe string) bool { return probe == ProbeData || probe == ProbeClock }

func usesZmyctl(probe string) bool { return slices.Contains(zmyctlProbes, probe) }

// roundScope says whether a round probes the cluster's dependencies besides its nodes.
type roundScope int

const (
	nodesOnly        roundScope = iota // the recovery gate's netcheck round
	withDependencies                   // a verdict: also the cluster-wide etcd and redis probes
)

// fanOut runs probes on every node of the cluster in two phases (the /metrics scrapes, then the
// rest), at most detection.concurrency nodes at once per phase, each node's probes in parallel,
// plus the cluster-wide etcd and redis probes when the scope says so. It returns when every probe is done or ctx ends, whichever is first: a probe still
// running then is recorded as not having answered, so a hung node never holds the verdict past
// the budget. The probes get a deadline slightly earlier than ctx's, so that a probe honouring it
// reports its own reason ("status n3: timed out") rather than being cut off by the collector.
func (p *Prober) fanOut(ctx context.Context, cs *clusterState, cfg *config.Config, probes []string, scope roundScope) []Result {
	nodes := cs.cfg.Nodes
	col := newCollector(len(nodes) + 1) // the last row holds cluster-wide probes
	pctx, cancel := earlier(ctx)
	defer cancel()

	// The breaker decides up front which nodes this round probes.
	type round struct {
		row     int
		node    config.NodeConfig
		names   []string
		done    func(error)
		metrics func(context.Context) (*zmy.NodeMetrics, error) // one /metrics scrape per node per round
	}
	var rounds []round
	for i, n := range nodes {
		names := applicable(probes, n)
		col.expect(i, n.ID, names)
		br := cs.breaker(n.ID, cfg.Detection.NodeBreaker)
		done, err := br.Allow()
		if err != nil {
			reason := fmt.Sprintf("node breaker %s: no answer on %d consecutive rounds; retried after %s",
				br.State(), max(cfg.Detection.NodeBreaker.ConsecutiveFailures, 1), breakerCooldown(cfg.Detection.NodeBreaker))
			for j, r := range unanswered(n.ID, names, StatusSkipped, reason) {
				col.put(i, j, r)
			}
			continue
		}
		metrics := sharedScrape(func() (*zmy.NodeMetrics, error) {
			sctx, cancel := probeContext(pctx, cfg)
			defer cancel()
			return zmy.Scrape(sctx, p.http, n.MetricsURL, 0)
		})
		rounds = append(rounds, round{row: i, node: n, names: names, done: done, metrics: metrics})
	}

	sem := semaphore.NewWeighted(int64(max(cfg.Detection.Concurrency, 1)))
	phase := func(wg *sync.WaitGroup, first bool) {
		for _, rd := range rounds {
			var js []int
			for j, name := range rd.names {
				if firstPhase(name) == first {
					js = append(js, j)
				}
			}
			if len(js) == 0 {
				continue
			}
			wg.Go(func() {
				if err := sem.Acquire(pctx, 1); err != nil {
					return // left unset: "no answer within the budget"
				}
				defer sem.Release(1)
				col.started(rd.row)
				var each sync.WaitGroup
				for _, j := range js {
					each.Go(func() { col.put(rd.row, j, p.probeOne(pctx, cs, cfg, rd.node, rd.names[j], rd.metrics)) })
				}
				each.Wait()
			})
		}
	}
	var all sync.WaitGroup
	all.Go(func() {
		var first sync.WaitGroup
		phase(&first, true)
		// A hung /metrics must not hold every other probe back: the second phase starts when
		// the first is done or after a quarter of what is left of the budget.
		waitAtMost(pctx, &first, remaining(pctx)/4)
		var second sync.WaitGroup
		phase(&second, false)
		second.Wait()
		first.Wait()
	})
	if scope == withDependencies {
		targets, names := dependencies(cs)
		col.expect(len(nodes), "", names)
		for j, t := range targets {
			all.Go(func() {
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
	waitAtMost(ctx, &all, -1)

	rows, ran := col.collect(fmt.Sprintf("no answer within the budget: %v", context.Cause(ctx)))
	for _, rd := range rounds {
		switch {
		case errors.Is(ctx.Err(), context.Canceled):
			rd.done(context.Canceled) // the caller gave up: says nothing about the node
		case !ran[rd.row]:
			rd.done(errNotProbed)
		case silent(rows[rd.row]):
			rd.done(errNodeSilent)
		default:
			rd.done(nil)
		}
	}
	var out []Result
	for _, row := range rows {
		for _, r := range row {
			p.metrics.observe(r)
			out = append(out, r)
		}
	}
	return out
}

// waitAtMost waits for wg, for ctx, or for d (d < 0: no limit), whichever comes first.
func waitAtMost(ctx context.Context, wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var limit <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		limit = t.C
	}
	select {
	case <-done:
	case <-ctx.Done():
	case <-limit:
	}
}

func remaining(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), 0)
	}
	return time.Second
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
	ran    []bool // the node got a probe slot
	closed bool
}

func newCollector(rows int) *collector {
	return &collector{rows: make([][]Result, rows), set: make([][]bool, rows), ran: make([]bool, rows)}
}

// expect declares row i's probes before any goroutine may put into it.
func (c *collector) expect(i int, node string, names []string) {
	c.rows[i] = unanswered(node, names, StatusError, "")
	c.set[i] = make([]bool, len(names))
}

func (c *collector) started(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ran[i] = true
}

func (c *collector) put(i, j int, r Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.rows[i][j], c.set[i][j] = r, true
	}
}

// collect closes the collector and returns every row, unset results carrying reason, and which
// rows got a probe slot.
func (c *collector) collect(reason string) ([][]Result, []bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for i, row := range c.rows {
		for j := range row {
			if !c.set[i][j] {
				row[j].Reason = reason
			}
		}
	}
	return c.rows, c.ran
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

// silent reports whether no probe other than the responder's own TCP dial got an answer.
func silent(rs []Result) bool {
	for _, r := range rs {
		if r.Probe != ProbeTCP && r.Status != StatusError {
			return false
		}
	}
	return len(rs) > 0
}

// probeOne runs one probe of a node within probe_timeout and ctx.
func (p *Prober) probeOne(ctx context.Context, cs *clusterState, cfg *config.Config, n config.NodeConfig, name string,
	metrics func(context.Context) (*zmy.NodeMetrics, error)) Result {
	if cs.driverErr != nil && usesZmyctl(name) {
		return Result{Probe: name, Node: n.ID, Status: StatusError, Err: cs.driverErr, Reason: cs.driverErr.Error()}
	}
	pctx, cancel := probeContext(ctx, cfg)
	defer cancel()
	return run(pctx, name, Target{Cluster: &cs.cfg, Node: n, Zmyctl: cs.driver, HTTP: p.http, Metrics: metrics, GRPC: &p.grpc})
}

func probeContext(ctx context.Context, cfg *config.Config) (context.Context, context.CancelFunc) {
	if d := time.Duration(cfg.Detection.ProbeTimeout); d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
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
func (cs *clusterState) breaker(node string, bc config.BreakerConfig) *gobreaker.TwoStepCircuitBreaker[struct{}] {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if b, ok := cs.breakers[node]; ok {
		return b
	}
	trip := max(bc.ConsecutiveFailures, 1)
	b := gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        cs.cfg.Name + "/" + node,
		Timeout:     breakerCooldown(bc),
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= trip },
		IsExcluded: func(err error) bool {
			return errors.Is(err, context.Canceled) || errors.Is(err, errNotProbed)
		},
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
