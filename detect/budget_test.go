package detect

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// A freed slot goes to the oldest urgent waiter before any watch-mode waiter, a waiter that
// gives up holds nothing, and a larger budget lets waiters in at once.
func TestProbeBudgetOrder(t *testing.T) {
	b := newProbeBudget(1)
	require.NoError(t, b.acquire(t.Context(), background))

	got := make(chan string, 3)
	wait := func(name string, prio priority) {
		go func() {
			if b.acquire(t.Context(), prio) == nil {
				got <- name
			}
		}()
	}
	waiting := func(n int) func() bool {
		return func() bool {
			b.mu.Lock()
			defer b.mu.Unlock()
			return b.waiting[background].Len()+b.waiting[urgent].Len() == n
		}
	}
	wait("watch-1", background)
	eventually(t, waiting(1), "watch-1 queued")
	wait("urgent", urgent)
	eventually(t, waiting(2), "urgent queued")

	gaveUp, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- b.acquire(gaveUp, urgent) }()
	eventually(t, waiting(3), "a third waiter queued")
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)

	b.release()
	require.Equal(t, "urgent", <-got, "urgent before the older watch waiter")
	b.release()
	require.Equal(t, "watch-1", <-got)

	wait("watch-2", background)
	wait("watch-3", background)
	eventually(t, waiting(2), "two watch waiters")
	b.resize(3)
	require.ElementsMatch(t, []string{"watch-2", "watch-3"}, []string{<-got, <-got}, "a larger budget admits them")
	b.mu.Lock()
	require.Equal(t, 3, b.inUse, "the waiter that gave up holds no slot")
	b.mu.Unlock()
}

// blockingZmyctl is a zmyctl whose every call waits until released (or its deadline), and that
// counts the calls in flight: the probe budget is what bounds them.
type blockingZmyctl struct {
	release chan struct{}
	mu      sync.Mutex
	now     int
	most    int
}

func (z *blockingZmyctl) call(ctx context.Context) error {
	z.mu.Lock()
	z.now++
	z.most = max(z.most, z.now)
	z.mu.Unlock()
	defer func() {
		z.mu.Lock()
		z.now--
		z.mu.Unlock()
	}()
	select {
	case <-z.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (z *blockingZmyctl) inFlight() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.now
}

func (z *blockingZmyctl) Status(ctx context.Context, n config.NodeConfig) (*zmy.QuorumStatus, *zmy.Result, error) {
	if err := z.call(ctx); err != nil {
		return nil, nil, err
	}
	return &zmy.QuorumStatus{Node: n.ID, Quorum: zmy.QuorumOK, LeaderID: "n1", Term: 1}, nil, nil
}

func (z *blockingZmyctl) RaftState(ctx context.Context, n config.NodeConfig) (*zmy.RaftState, *zmy.Result, error) {
	if err := z.call(ctx); err != nil {
		return nil, nil, err
	}
	return &zmy.RaftState{Node: n.ID, RaftState: "follower", LeaderID: "n1", Term: 1}, nil, nil
}

func (z *blockingZmyctl) Netcheck(ctx context.Context, n config.NodeConfig) (*zmy.Netcheck, *zmy.Result, error) {
	if err := z.call(ctx); err != nil {
		return nil, nil, err
	}
	return &zmy.Netcheck{Node: n.ID}, nil, nil
}

// budgetProber is a prober of clusters a and b (3 nodes each, nothing but zmyctl to probe) whose
// zmyctl is z, with a probe budget of concurrency and a round budget of roundBudget.
func budgetProber(t *testing.T, z Zmyctl, concurrency int, roundBudget time.Duration) (*Prober, *prometheus.Registry) {
	t.Helper()
	cfg := staticConfig(staticCluster("a", "n1", "n2", "n3"), staticCluster("b", "n1", "n2", "n3"))
	cfg.Detection.Concurrency = concurrency
	cfg.Detection.Threshold.Min = model.Duration(roundBudget)
	reg := prometheus.NewRegistry()
	p := NewProber(cfg, Options{Registerer: reg})
	for _, cs := range p.clusters {
		cs.driver, cs.driverErr = z, nil
	}
	return p, reg
}

// detection.concurrency bounds the probes of every cluster together, not of each round: two
// clusters confirmed at once never have more zmyctl calls in flight than the budget.
func TestProbeBudgetIsSharedByEveryCluster(t *testing.T) {
	z := &blockingZmyctl{release: make(chan struct{})}
	p, _ := budgetProber(t, z, 2, time.Minute)
	var wg sync.WaitGroup
	verdicts := make(map[string]*incident.Verdict)
	errs := make(map[string]error)
	var mu sync.Mutex
	for _, c := range []string{"a", "b"} {
		wg.Go(func() {
			v, err := p.Confirm(t.Context(), c)
			mu.Lock()
			verdicts[c], errs[c] = v, err
			mu.Unlock()
		})
	}
	eventually(t, func() bool { return z.inFlight() == 2 }, "the budget's two slots are used")
	eventually(t, func() bool { return testutil.ToFloat64(p.metrics.slotsWaiting) > 0 }, "the other probes wait for a slot")
	require.Equal(t, 2.0, testutil.ToFloat64(p.metrics.slotsInUse))
	close(z.release)
	wg.Wait()
	require.Equal(t, 2, z.most, "never more probes at once than detection.concurrency, across clusters")
	for c, v := range verdicts {
		require.NoError(t, errs[c], c)
		require.NotContains(t, v.Reason, budgetExhausted, c)
	}
	require.Equal(t, 0.0, testutil.ToFloat64(p.metrics.slotsInUse), "every slot is given back")
}

// A round that cannot get probe slots before its budget ends because the daemon is busy is
// inconclusive and says so, counts its probes as budget_exhausted (not as failures of the
// nodes), and opens no node breaker however often it happens.
func TestBudgetExhaustedRoundIsInconclusive(t *testing.T) {
	z := &blockingZmyctl{release: make(chan struct{})}
	close(z.release) // zmyctl answers at once
	p, reg := budgetProber(t, z, 2, 200*time.Millisecond)
	// Something else holds the whole budget.
	for range 2 {
		require.NoError(t, p.budget.acquire(t.Context(), urgent))
	}
	_, cs, err := p.state("b")
	require.NoError(t, err)
	var probes int
	for range config.DefaultDetection.NodeBreaker.ConsecutiveFailures + 1 {
		v, err := p.probeCluster(t.Context(), "b", background)
		require.NoError(t, err)
		require.Equal(t, incident.VerdictInconclusive, v.Kind)
		probes = len(v.Evidence)
		require.True(t, strings.HasPrefix(v.Reason, fmt.Sprintf(
			"%s: %d of %d probes got no probe slot in time (detection.concurrency 2, shared by every cluster's rounds); ",
			budgetExhausted, probes, probes)), v.Reason)
		for _, e := range v.Evidence {
			require.True(t, e.Skipped, "%s/%s was not run", e.Node, e.Probe)
			require.Contains(t, e.Error, budgetExhausted)
		}
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		require.Equal(t, "closed", cs.breaker(n, config.DefaultDetection.NodeBreaker).State().String(),
			"a busy responder is no evidence against %s", n)
	}
	var exhausted, failed float64
	for _, name := range ProbeNames {
		exhausted += testutil.ToFloat64(p.metrics.probeResults.WithLabelValues(name, string(StatusBudgetExhausted)))
		failed += testutil.ToFloat64(p.metrics.probeResults.WithLabelValues(name, string(StatusError))) +
			testutil.ToFloat64(p.metrics.probeResults.WithLabelValues(name, string(StatusFail)))
	}
	require.Equal(t, float64(probes*int(config.DefaultDetection.NodeBreaker.ConsecutiveFailures+1)), exhausted)
	require.Zero(t, failed, "no probe of a node is counted as failed")
	n, err := testutil.GatherAndCount(reg, "zmy_responder_probe_slot_wait_seconds")
	require.NoError(t, err)
	require.Equal(t, 2, n, "both priorities exist")

	// With the budget free again the same round answers.
	p.budget.release()
	p.budget.release()
	v, err := p.probeCluster(t.Context(), "b", background)
	require.NoError(t, err)
	require.NotContains(t, v.Reason, budgetExhausted)
}

// A probe that got its slot late and was then cut off by the end of the round spent the round
// in the queue: budget_exhausted. One that got its slot at once and ran out the round on a
// node that does not answer is that node's error, as before.
func TestLateSlotCutByTheRoundIsBudgetExhausted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := staticConfig(staticCluster("a", "n1"))
		cfg.Detection.Concurrency = 1
		p := NewProber(cfg, Options{})
		hang := func(ctx context.Context) func(int) Result {
			return func(int) Result {
				<-ctx.Done()
				return Result{Probe: ProbeControl, Node: "n1", Status: StatusError, Reason: "status n1: timed out"}
			}
		}

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		col := newCollector(1)
		col.expect(0, "n1", []string{ProbeControl})
		p.withSlot(ctx, background, col, 0, []int{0}, hang(ctx))
		rows := col.collect("unanswered", "no slot")
		require.Equal(t, StatusError, rows[0][0].Status, "no wait: the node's own timeout")

		ctx, cancel = context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		require.NoError(t, p.budget.acquire(t.Context(), urgent)) // the daemon is busy
		col = newCollector(1)
		col.expect(0, "n1", []string{ProbeControl})
		done := make(chan struct{})
		go func() { p.withSlot(ctx, background, col, 0, []int{0}, hang(ctx)); close(done) }()
		time.Sleep(900 * time.Millisecond)
		p.budget.release()
		<-done
		rows = col.collect("unanswered", "no slot")
		require.Equal(t, StatusBudgetExhausted, rows[0][0].Status)
		require.Equal(t, budgetExhausted+": waited 900ms for a probe slot, then the round's budget ended 100ms into the probe (status n1: timed out)",
			rows[0][0].Reason)
	})
}

// Watched clusters start their rounds spread over their interval, not together.
func TestWatchRoundsAreStaggered(t *testing.T) {
	cfg := staticConfig(staticCluster("a", "n1"), staticCluster("b", "n1"), staticCluster("c", "n1"),
		staticCluster("d", "n1"), staticCluster("e", "n1"))
	cfg.Detection.WatchInterval = model.Duration(10 * time.Second)
	cfg.Clusters[3].WatchInterval = model.Duration(time.Minute)
	require.Equal(t, []watchLoop{
		{cluster: "a", every: 10 * time.Second, offset: 0},
		{cluster: "b", every: 10 * time.Second, offset: 2 * time.Second},
		{cluster: "c", every: 10 * time.Second, offset: 4 * time.Second},
		{cluster: "d", every: time.Minute, offset: 36 * time.Second},
		{cluster: "e", every: 10 * time.Second, offset: 8 * time.Second},
	}, staggered(cfg))

	cfg.Detection.WatchInterval = 0
	require.Equal(t, []watchLoop{{cluster: "d", every: time.Minute, offset: 0}}, staggered(cfg),
		"without a global interval only clusters with their own are watched")
}

// statusClock is a zmyctl that answers at once and remembers when each status call came.
type statusClock struct {
	mu    sync.Mutex
	calls []time.Time
}

func (z *statusClock) Status(_ context.Context, n config.NodeConfig) (*zmy.QuorumStatus, *zmy.Result, error) {
	z.mu.Lock()
	z.calls = append(z.calls, time.Now())
	z.mu.Unlock()
	return &zmy.QuorumStatus{Node: n.ID, Quorum: zmy.QuorumOK, LeaderID: "n1", Term: 1}, nil, nil
}

func (z *statusClock) RaftState(_ context.Context, n config.NodeConfig) (*zmy.RaftState, *zmy.Result, error) {
	return &zmy.RaftState{Node: n.ID, RaftState: "follower", LeaderID: "n1", Term: 1}, nil, nil
}

func (z *statusClock) Netcheck(_ context.Context, n config.NodeConfig) (*zmy.Netcheck, *zmy.Result, error) {
	return &zmy.Netcheck{Node: n.ID}, nil, nil
}

// Watch mode itself starts the clusters' rounds spread over the interval: four clusters on 8s
// are first probed 0, 2, 4 and 6 s after Run starts, then every 8 s each (in the bubble's
// fake time, so the instants are exact on any machine).
func TestWatchModeSpreadsRoundsOverTheInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		names := []string{"a", "b", "c", "d"}
		var cs []config.ClusterConfig
		for _, n := range names {
			cs = append(cs, staticCluster(n, "n1"))
		}
		cfg := staticConfig(cs...)
		cfg.Detection.WatchInterval = model.Duration(8 * time.Second)
		cfg.Detection.Threshold.Recompute = 0
		p := NewProber(cfg, Options{})
		clocks := map[string]*statusClock{}
		for _, n := range names {
			clocks[n] = &statusClock{}
			p.clusters[n].driver, p.clusters[n].driverErr = clocks[n], nil
		}

		ctx, cancel := context.WithCancel(t.Context())
		start := time.Now()
		done := make(chan struct{})
		go func() { p.Run(ctx); close(done) }()
		time.Sleep(15 * time.Second) // fake time: up to just past d's second round
		synctest.Wait()
		cancel()
		<-done

		for i, n := range names {
			offset := time.Duration(i) * 2 * time.Second
			var got []time.Duration
			for _, at := range clocks[n].calls {
				got = append(got, at.Sub(start))
			}
			require.Equal(t, []time.Duration{offset, offset + 8*time.Second}, got, "cluster %s", n)
		}
	})
}
