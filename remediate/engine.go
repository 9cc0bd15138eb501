package remediate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// Prober is what the runbook needs of detection; detect.Prober implements it.
type Prober interface {
	Confirm(ctx context.Context, cluster string) (*incident.Verdict, error)
	RecoveryGate(ctx context.Context, cluster string) (incident.Gate, error)
}

// Store is the part of the journal the runbook uses: the incidents, and small per-cluster
// documents (breaker, pause, anti-flap) updated atomically. *incident.Journal implements it.
type Store interface {
	Get(ctx context.Context, id string) (*incident.Incident, error)
	List(ctx context.Context, openOnly bool) ([]*incident.Incident, error)
	// Page lists summaries, newest first, one bounded page at a time.
	Page(ctx context.Context, q incident.PageQuery) (*incident.Page, error)
	// Update durably applies fn to the stored incident; an error from fn aborts.
	Update(ctx context.Context, id string, fn func(*incident.Incident) error) (*incident.Incident, error)
	// Ingest journals deliveries as the webhook does (a retry journals an incident's alerts again).
	Ingest(ctx context.Context, ds []incident.Delivery) ([]incident.IngestResult, error)
	stateStore
	// ID identifies the journal (the token in ZMY_ACTOR): runbooks of different journals are
	// different runbooks, even for incidents of the same id.
	ID() string
}

// Leadership says whether this replica may act on a cluster now, and the fence its journal
// writes carry; Changes names a cluster whenever that may have changed. internal/ha implements
// it: Single for the embedded journal, Elector on etcd.
type Leadership interface {
	Acting(cluster string) (incident.Fence, error)
	Changes() <-chan string
}

// everyCluster is the leadership of a lone replica: it acts on every cluster, unfenced.
type everyCluster struct{}

func (everyCluster) Acting(string) (incident.Fence, error) { return incident.Fence{}, nil }
func (everyCluster) Changes() <-chan string                { return nil }

// Options are the engine's collaborators. The zero value is usable.
type Options struct {
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Now        func() time.Time
	// Failpoint, when set, is called at named points of the runbook (see failpoints.go); the
	// crash tests use it to kill the process exactly there.
	Failpoint func(name string)
	// Replica names this responder in ZMY_ACTOR; default the host name.
	Replica string
	// Leadership decides which clusters this replica acts on; nil: every cluster (one replica).
	Leadership Leadership
	// Scan, when positive, is how often the engine lists the open incidents to pick up the
	// ones another replica journaled, and aborts requested there. Replicas sharing a store
	// need it; a lone replica learns of everything through Kick.
	Scan time.Duration
	// Changes, when set with Scan, signals that the store changed (an etcd watch): the engine
	// then looks at once instead of at the next scan, which remains the backstop.
	Changes func(ctx context.Context) <-chan struct{}
}

// Engine runs the runbook: one goroutine per open incident, driven by the journal.
type Engine struct {
	j    Store
	p    Prober
	log  *slog.Logger
	now  func() time.Time
	m    *metrics
	sem  *prioSemaphore
	brk  *breakers
	fail func(string)
	// replica is this responder's name in ZMY_ACTOR.
	replica string
	lead    Leadership
	scan    time.Duration
	changes func(ctx context.Context) <-chan struct{}

	mu      sync.Mutex
	cfg     *config.Config
	drivers map[string]Nodes
	sil     *silencer
	runners map[string]*runner
	pending []string
	ctx     context.Context // Run's; nil before Run
	wg      sync.WaitGroup

	stateMu sync.Mutex // read-modify-write of cluster state documents
	closeMu sync.Mutex // closing and aborting: one at a time, each re-reads the journal
	reg     prometheus.Registerer
}

// runner is the goroutine that advances one open incident.
type runner struct {
	id      string
	cluster string
	cancel  context.CancelCauseFunc
	wake    chan struct{}
	done    chan struct{}
	step    incident.Step
	silMu   sync.Mutex // serializes silence operations of this incident
	// Guarded by Engine.mu:
	takeover     string             // "manual silence <id> by <who>", set by the silence keeper
	stageCancel  context.CancelFunc // cancels the running stage (takeover)
	keeperCancel context.CancelFunc // stops the silence keeper
	keeperDone   chan struct{}
	// Owned by the runner goroutine:
	lastNote, journaledNote string
}

// takeoverOf returns the takeover reason, if a human's silence was seen.
func (e *Engine) takeoverOf(r *runner) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return r.takeover
}

// NewEngine builds the engine; nothing runs until Run.
func NewEngine(cfg *config.Config, j Store, p Prober, opts Options) (*Engine, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	if opts.Replica == "" {
		opts.Replica, _ = os.Hostname()
	}
	if opts.Leadership == nil {
		opts.Leadership = everyCluster{}
	}
	e := &Engine{
		j: j, p: p, log: opts.Logger, now: opts.Now, m: m, fail: opts.Failpoint, replica: opts.Replica,
		lead: opts.Leadership, scan: opts.Scan, changes: opts.Changes,
		runners: map[string]*runner{}, reg: opts.Registerer,
		sem: newPrioSemaphore(cfg.Remediation.Concurrency),
	}
	e.brk = newBreakers(j, cfg.Remediation.Breaker, func(c string, s BreakerState) {
		e.m.setBreaker(c, s)
	})
	drivers, sil, err := e.build(cfg)
	if err != nil {
		return nil, err
	}
	e.cfg, e.drivers, e.sil = cfg, drivers, sil
	e.m.addClusters(cfg)
	return e, nil
}

// build does the fallible work of a (re)configuration before anything is swapped.
func (e *Engine) build(cfg *config.Config) (map[string]Nodes, *silencer, error) {
	drivers := map[string]Nodes{}
	for _, c := range cfg.Clusters {
		d, err := zmy.ForCluster(cfg, c, e.reg)
		if err != nil {
			return nil, nil, fmt.Errorf("build node driver: %w", err)
		}
		drivers[c.Name] = d
	}
	sil, err := newSilencer(cfg)
	if err != nil {
		return nil, nil, err
	}
	return drivers, sil, nil
}

// PrepareConfig does the fallible work of applying a reloaded config (drivers, silencer) and
// returns what swaps it in. Nothing changes until commit is called: a config the engine cannot
// use fails the reload with the reason, and the engine keeps running the old one.
func (e *Engine) PrepareConfig(cfg *config.Config) (commit func(), err error) {
	drivers, sil, err := e.build(cfg)
	if err != nil {
		return nil, fmt.Errorf("remediation cannot use the new configuration: %w", err)
	}
	return func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.cfg, e.drivers, e.sil = cfg, drivers, sil
		e.m.addClusters(cfg)
		e.sem.SetLimit(cfg.Remediation.Concurrency)
		e.brk.SetConfig(cfg.Remediation.Breaker)
	}, nil
}

// SetConfig applies a reloaded config at once (PrepareConfig, then commit).
func (e *Engine) SetConfig(cfg *config.Config) error {
	commit, err := e.PrepareConfig(cfg)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// snapshot returns the current config, the cluster's config and driver, and the silencer.
func (e *Engine) snapshot(cluster string) (*config.Config, *config.ClusterConfig, Nodes, *silencer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cfg, e.cfg.Cluster(cluster), e.drivers[cluster], e.sil
}

// Run resumes every open incident at its journaled step, then serves Kick until ctx ends, and
// waits for the incident goroutines to stop.
func (e *Engine) Run(ctx context.Context) error {
	open, err := e.j.List(ctx, true)
	if ctx.Err() != nil {
		return nil // shut down before we started: nothing to resume
	}
	if err != nil {
		return fmt.Errorf("list open incidents to resume: %w", err)
	}
	e.mu.Lock()
	e.ctx = ctx
	for _, inc := range open {
		r := e.newRunnerLocked(inc.ID, inc.Cluster)
		r.step = inc.Step
		e.startLocked(r)
	}
	for _, id := range e.pending {
		e.kickLocked(id)
	}
	e.pending = nil
	e.mu.Unlock()
	for _, c := range e.config().Clusters {
		if _, err := e.brk.State(ctx, c.Name); err != nil {
			e.log.Error("cannot restore breaker", "cluster", c.Name, "err", err)
		}
		if st, err := loadClusterState(ctx, e.j, c.Name); err == nil && st.Paused != nil {
			e.m.clusterPaused.WithLabelValues(c.Name).Set(1)
		}
	}
	e.wg.Go(func() { e.sweepOrphans(ctx) })
	e.wg.Go(func() { e.followLeadership(ctx) })
	if e.scan > 0 {
		e.wg.Go(func() { e.scanOpen(ctx) })
	}
	<-ctx.Done()
	e.wg.Wait()
	return nil
}

// Kick tells the engine an incident got a delivery. It starts the incident's goroutine unless
// one runs already (then it only wakes it); before Run it is remembered.
func (e *Engine) Kick(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx == nil {
		e.pending = append(e.pending, id)
		return
	}
	e.kickLocked(id)
}

func (e *Engine) kickLocked(id string) {
	if r, ok := e.runners[id]; ok {
		select {
		case r.wake <- struct{}{}:
		default:
		}
		return
	}
	if e.ctx.Err() != nil {
		return
	}
	e.startLocked(e.newRunnerLocked(id, ""))
}

func (e *Engine) newRunnerLocked(id, cluster string) *runner {
	r := &runner{id: id, cluster: cluster, wake: make(chan struct{}, 1), done: make(chan struct{})}
	e.runners[id] = r
	return r
}

func (e *Engine) startLocked(r *runner) {
	ctx, cancel := context.WithCancelCause(e.ctx)
	r.cancel = cancel
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(r.done)
		defer cancel(nil)
		e.drive(ctx, r)
		e.mu.Lock()
		delete(e.runners, r.id)
		e.mu.Unlock()
	}()
}

// errStale says the journaled incident is no longer where the runner thought it was (aborted,
// closed, or moved on); the runner re-reads it.
var errStale = errors.New("incident changed meanwhile")

// drive advances one incident until it is closed or ctx ends: read the journal, run the stage
// of the current step, act on its result. controller-runtime's loop, one incident at a time.
func (e *Engine) drive(ctx context.Context, r *runner) {
	defer e.stopKeeper(r)
	log := e.log.With("incident", r.id)
	backoff := newBackoff(50*time.Millisecond, 5*time.Second)
	for ctx.Err() == nil {
		inc, err := e.j.Get(ctx, r.id)
		if errors.Is(err, incident.ErrNotFound) {
			log.Error("kicked for an unknown incident")
			return
		}
		if err != nil {
			log.Error("cannot read incident; retrying", "err", err)
			if !sleep(ctx, backoff.next(), nil) {
				return
			}
			continue
		}
		e.track(r, inc)
		if !inc.Open() {
			return
		}
		fence, err := e.lead.Acting(inc.Cluster)
		if err != nil {
			// Another replica leads the cluster (or this one may no longer): it is theirs.
			log.Debug("not acting on the incident", "cluster", inc.Cluster, "err", err)
			return
		}
		// Every journal write from here on is conditioned on still leading the cluster.
		ctx := incident.WithFence(ctx, fence)
		if pastGuards(inc.Step) && inc.Outcome == "" && inc.Abort == nil {
			e.startKeeper(ctx, r)
		}
		if inc.Abort != nil || inc.Outcome != "" {
			// An abort or a close was journaled but not finished (crash, or the API is
			// finishing it right now): finish it; both paths are serialized and idempotent.
			if err := e.finish(ctx, r, inc.ID); err != nil {
				log.Error("cannot finish closing incident; retrying", "err", err)
				if !sleep(ctx, backoff.next(), nil) {
					return
				}
			}
			continue
		}
		res := e.execStep(ctx, r, inc)
		if ctx.Err() != nil {
			return
		}
		if _, err := e.lead.Acting(inc.Cluster); err != nil {
			log.Warn("leadership lost during the step; its result is not journaled", "step", inc.Step, "err", err)
			return
		}
		wait, err := e.act(ctx, r, inc, res)
		if err != nil && !errors.Is(err, errStale) {
			log.Error("cannot journal the step result; retrying", "step", inc.Step, "err", err)
			wait = backoff.next()
		} else if err == nil && wait == 0 {
			backoff.reset()
		}
		if wait > 0 && !sleep(ctx, wait, r.wake) {
			return
		}
	}
}

// track keeps the runner's view of its incident and the step metrics current.
func (e *Engine) track(r *runner, inc *incident.Incident) {
	e.mu.Lock()
	r.cluster = inc.Cluster
	r.step = inc.Step
	e.mu.Unlock()
	if e.config().Cluster(inc.Cluster) != nil {
		e.m.setStep(inc.Cluster, inc.Step)
	}
}

// sleep waits d, or until wake fires or ctx ends; false means ctx ended.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}

type backoff struct{ cur, min, max time.Duration }

func newBackoff(minD, maxD time.Duration) *backoff { return &backoff{min: minD, max: maxD} }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

func (e *Engine) breakerState(ctx context.Context, cluster string) (BreakerState, error) {
	return e.brk.State(ctx, cluster)
}

func (e *Engine) clusterState(ctx context.Context, cluster string) (clusterState, error) {
	return loadClusterState(ctx, e.j, cluster)
}

// actor is who this runbook is on the nodes, for incident id: the token is the journal's
// identity, with the fencing revision of the leadership it acts under when there is one.
func (e *Engine) actor(ctx context.Context, id string) zmy.Actor {
	token := e.j.ID()
	if f, ok := incident.FenceFrom(ctx); ok {
		token = fmt.Sprintf("%s.%d", token, f.Revision)
	}
	return zmy.Actor{Replica: e.replica, Incident: id, Token: token}
}

// followLeadership starts the runners of a cluster this replica came to lead (its open
// incidents resume at their journaled step, level-based) and stops those of a cluster it no
// longer leads.
func (e *Engine) followLeadership(ctx context.Context) {
	ch := e.lead.Changes()
	if ch == nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case cluster := <-ch:
			if _, err := e.lead.Acting(cluster); err != nil {
				e.stopCluster(cluster)
				continue
			}
			if err := e.resumeOpen(ctx, func(inc *incident.Incident) bool { return inc.Cluster == cluster }); err != nil {
				e.log.Error("cannot resume the incidents of a cluster this replica now leads", "cluster", cluster, "err", err)
			}
		}
	}
}

// changeSettle is how long the engine lets a burst of store changes settle before it looks:
// at most ten looks a second however busy the store (an ingest storm writes incident records).
const changeSettle = 100 * time.Millisecond

// scanOpen picks up open incidents journaled by another replica on a cluster this one leads,
// and aborts requested there of incidents it runs: when the store signals a change, and every
// scan interval.
func (e *Engine) scanOpen(ctx context.Context) {
	var changes <-chan struct{}
	if e.changes != nil {
		changes = e.changes(ctx)
	}
	t := time.NewTimer(e.scan)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-changes:
			if !ok {
				changes = nil // the watch is gone with ctx; the timer goes on
				continue
			}
			// A burst of writes (a step, an ingest) is one look: wait for it to settle a little.
			if !sleep(ctx, changeSettle, nil) {
				return
			}
			select {
			case <-changes:
			default:
			}
		case <-t.C:
		}
		t.Reset(e.scan)
		if err := e.resumeOpen(ctx, func(inc *incident.Incident) bool {
			_, err := e.lead.Acting(inc.Cluster)
			return err == nil
		}); err != nil {
			e.log.Warn("cannot list open incidents", "err", err)
		}
	}
}

// resumeOpen starts a runner for every open incident that want selects and has none, and
// interrupts the running step of one whose abort was journaled elsewhere.
func (e *Engine) resumeOpen(ctx context.Context, want func(*incident.Incident) bool) error {
	open, err := e.j.List(ctx, true)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx == nil || e.ctx.Err() != nil {
		return nil
	}
	for _, inc := range open {
		if !want(inc) {
			continue
		}
		r, ok := e.runners[inc.ID]
		if !ok {
			r = e.newRunnerLocked(inc.ID, inc.Cluster)
			e.startLocked(r)
			continue
		}
		if inc.Abort != nil && r.stageCancel != nil {
			r.stageCancel()
		}
	}
	return nil
}

// stopCluster stops the runners of a cluster this replica no longer leads; the new leader
// resumes its incidents from the journal.
func (e *Engine) stopCluster(cluster string) {
	e.mu.Lock()
	var stopped []*runner
	for _, r := range e.runners {
		if r.cluster == cluster {
			r.cancel(fmt.Errorf("no longer leading cluster %s", cluster))
			stopped = append(stopped, r)
		}
	}
	e.mu.Unlock()
	for _, r := range stopped {
		<-r.done
	}
}

// Busy reports whether an incident of the cluster is past the guards here: a leader hands a
// cluster over to another replica only when it is not.
func (e *Engine) Busy(cluster string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.runners {
		if r.cluster == cluster && pastGuards(r.step) {
			return true
		}
	}
	return false
}
