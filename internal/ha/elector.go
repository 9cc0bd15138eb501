package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/promreg"
)

// Options configure an Elector. Client, Prefix and Replica are required.
type Options struct {
	Client  *clientv3.Client
	Prefix  string // keys live under Prefix + "ha/"
	Replica string // this replica's name, unique among replicas
	// TTL is the session lease: a dead replica's leaderships end this long after its last
	// keepalive. The client renews it every TTL/3. Default 10s.
	TTL time.Duration
	// Margin: a leader stops commanding once its last answered keepalive is older than
	// TTL - Margin, before its lease can have expired. Default TTL/4.
	Margin time.Duration
	// Busy says whether a cluster has an incident in progress; a leader hands a cluster back to
	// its preferred replica only when it is not busy. Nil: never busy.
	Busy       func(cluster string) bool
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Elector campaigns for the leadership of each configured cluster on one etcd session (one
// lease per replica, so one replica's death ends only its own leaderships). To spread clusters
// over replicas, each cluster has a preferred replica — clusters and live replicas sorted, dealt
// round-robin — and only the preferred replica campaigns while it is alive; the others campaign
// when it is gone (its registration expires with its lease) or when nobody has led the cluster
// for a while. A leader that is not preferred hands the cluster back when it is not busy.
type Elector struct {
	opts    Options
	log     *slog.Logger
	changes chan string
	m       *metrics

	mu        sync.Mutex
	clusters  []string
	replicas  []string               // live replicas, sorted
	leading   map[string]*leadership // cluster -> what this replica holds
	lastAlive time.Time              // last keepalive answer of the current session
	session   *concurrency.Session
	wake      chan struct{} // the clusters changed
}

type leadership struct {
	fence    incident.Fence
	election *concurrency.Election
}

// handBackEvery is how often a leader checks whether it should hand a cluster back.
const handBackEvery = time.Second

// preferenceCheckEvery is how often a replica that is not preferred looks whether the
// cluster has a leader or whether it became preferred.
const preferenceCheckEvery = 500 * time.Millisecond

// leaderlessGrace is how long a non-preferred replica waits for the preferred one to lead
// before it campaigns itself.
const leaderlessGrace = 3 * time.Second

// NewElector validates opts; nothing happens until Run.
func NewElector(opts Options) (*Elector, error) {
	if opts.Client == nil || opts.Replica == "" {
		return nil, errors.New("ha: an etcd client and a replica name are required")
	}
	if strings.Contains(opts.Replica, "/") {
		return nil, fmt.Errorf("ha: replica name %q must not contain '/'", opts.Replica)
	}
	if opts.TTL <= 0 {
		opts.TTL = 10 * time.Second
	}
	if opts.TTL < 2*time.Second {
		return nil, fmt.Errorf("ha: lease TTL %s is under the 2s etcd allows", opts.TTL)
	}
	if opts.Margin <= 0 || opts.Margin >= opts.TTL {
		opts.Margin = opts.TTL / 4
	}
	if opts.Busy == nil {
		opts.Busy = func(string) bool { return false }
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Elector{opts: opts, log: opts.Logger, m: m, changes: make(chan string, 64),
		leading: map[string]*leadership{}, wake: make(chan struct{}, 1)}, nil
}

// SetClusters is the set of clusters to campaign for (the configuration's, on start and reload).
func (e *Elector) SetClusters(names []string) {
	e.mu.Lock()
	e.clusters = slices.Sorted(slices.Values(names))
	e.mu.Unlock()
	for _, c := range names {
		e.m.leader.WithLabelValues(c)
		e.m.changes.WithLabelValues(c)
	}
	e.poke()
}

func (e *Elector) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Changes delivers the name of a cluster whenever this replica gains or loses its leadership.
func (e *Elector) Changes() <-chan string { return e.changes }

// Acting returns the fence to act on cluster under: this replica leads it and its lease was
// renewed recently enough that no other replica can lead it yet. Otherwise ErrNotLeader or
// ErrStale.
func (e *Elector) Acting(cluster string) (incident.Fence, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.leading[cluster]
	if l == nil {
		return incident.Fence{}, fmt.Errorf("%s: %w", cluster, ErrNotLeader)
	}
	if age := time.Since(e.lastAlive); age > e.opts.TTL-e.opts.Margin {
		return incident.Fence{}, fmt.Errorf("%s: %w (last answer %s ago, lease TTL %s)", cluster, ErrStale,
			age.Round(time.Millisecond), e.opts.TTL)
	}
	f := l.fence
	f.Until = e.lastAlive.Add(e.opts.TTL - e.opts.Margin) // when Acting turns stale without a renewal
	return f, nil
}

// Leading lists the clusters this replica leads.
func (e *Elector) Leading() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.leading))
	for c := range e.leading {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// Run keeps a session, registers the replica, and campaigns until ctx ends; then it resigns
// every leadership so that another replica takes over at once.
func (e *Elector) Run(ctx context.Context) error {
	b := time.Second
	for ctx.Err() == nil {
		err := e.runSession(ctx)
		e.dropAll()
		if ctx.Err() != nil {
			return nil
		}
		e.log.Warn("etcd session lost; all leaderships dropped, starting a new session", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(b):
		}
		b = min(2*b, 10*time.Second)
	}
	return nil
}

// runSession runs one session: registration, keepalive watch, one campaign loop per cluster.
func (e *Elector) runSession(ctx context.Context) error {
	s, err := concurrency.NewSession(e.opts.Client, concurrency.WithTTL(int(e.opts.TTL.Seconds())), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("open etcd session: %w", err)
	}
	defer s.Close() // revokes the lease: our election and registration keys go at once
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.mu.Lock()
	e.session, e.lastAlive = s, time.Now()
	e.mu.Unlock()

	kas, err := e.opts.Client.KeepAlive(sctx, s.Lease())
	if err != nil {
		return fmt.Errorf("keep the session lease alive: %w", err)
	}
	regKey := e.opts.Prefix + "ha/replicas/" + e.opts.Replica
	if _, err := e.opts.Client.Put(sctx, regKey, e.opts.Replica, clientv3.WithLease(s.Lease())); err != nil {
		return fmt.Errorf("register replica: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { e.watchReplicas(sctx) })
	wg.Go(func() { e.campaigns(sctx, s) })
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.Done():
			return errors.New("session lease expired or revoked")
		case ka, ok := <-kas:
			if !ok || ka == nil {
				return errors.New("keepalive channel closed")
			}
			e.mu.Lock()
			e.lastAlive = time.Now()
			e.mu.Unlock()
		}
	}
}

// watchReplicas keeps the list of live replicas (their registration keys live on their leases).
func (e *Elector) watchReplicas(ctx context.Context) {
	pfx := e.opts.Prefix + "ha/replicas/"
	for ctx.Err() == nil {
		resp, err := e.opts.Client.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			sleepCtx(ctx, time.Second)
			continue
		}
		e.setReplicas(resp.Kvs, pfx)
		wch := e.opts.Client.Watch(ctx, pfx, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
		for wr := range wch {
			if wr.Err() != nil {
				break
			}
			resp, err := e.opts.Client.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithKeysOnly())
			if err == nil {
				e.setReplicas(resp.Kvs, pfx)
			}
		}
	}
}

func (e *Elector) setReplicas(kvs []*mvccpb.KeyValue, pfx string) {
	var names []string
	for _, kv := range kvs {
		names = append(names, strings.TrimPrefix(string(kv.Key), pfx))
	}
	sort.Strings(names)
	e.mu.Lock()
	e.replicas = names // campaigns re-read it on their next look
	e.mu.Unlock()
}

// preferred is the replica that should lead cluster: clusters and live replicas sorted, dealt
// round-robin. Called with e.mu held.
func (e *Elector) preferredLocked(cluster string) string {
	if len(e.replicas) == 0 {
		return e.opts.Replica
	}
	i := slices.Index(e.clusters, cluster)
	if i < 0 {
		return ""
	}
	return e.replicas[i%len(e.replicas)]
}

// campaigns starts and stops one campaign per configured cluster, following SetClusters.
func (e *Elector) campaigns(ctx context.Context, s *concurrency.Session) {
	running := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	defer func() {
		for _, c := range running {
			c()
		}
		wg.Wait()
	}()
	for {
		e.mu.Lock()
		want := slices.Clone(e.clusters)
		e.mu.Unlock()
		for c, cancel := range running {
			if !slices.Contains(want, c) {
				cancel()
				delete(running, c)
			}
		}
		for _, c := range want {
			if _, ok := running[c]; ok {
				continue
			}
			cctx, cancel := context.WithCancel(ctx)
			running[c] = cancel
			wg.Go(func() { e.campaign(cctx, s, c) })
		}
		select {
		case <-ctx.Done():
			return
		case <-e.wake: // the clusters changed
		}
	}
}

// campaign is one cluster's loop: wait until this replica should campaign, win, hold, hand
// back when another replica is preferred and the cluster is idle, and so on until ctx ends.
func (e *Elector) campaign(ctx context.Context, s *concurrency.Session, cluster string) {
	el := concurrency.NewElection(s, e.opts.Prefix+"ha/leader/"+cluster)
	for ctx.Err() == nil {
		if !e.shouldCampaign(ctx, el, cluster) {
			continue
		}
		if err := el.Campaign(ctx, e.opts.Replica); err != nil {
			if ctx.Err() == nil {
				e.log.Warn("campaign failed", "cluster", cluster, "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		e.gain(cluster, &leadership{fence: incident.Fence{Key: el.Key(), Revision: el.Rev()}, election: el})
		e.hold(ctx, s, el, cluster)
		e.lose(cluster)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = el.Resign(rctx)
		cancel()
	}
}

// shouldCampaign waits until this replica should campaign for cluster: it is the preferred
// replica, or the cluster has had no leader for leaderlessGrace. false means look again.
func (e *Elector) shouldCampaign(ctx context.Context, el *concurrency.Election, cluster string) bool {
	e.mu.Lock()
	pref := e.preferredLocked(cluster)
	e.mu.Unlock()
	if pref == e.opts.Replica {
		return true
	}
	since := time.Now()
	for ctx.Err() == nil {
		lctx, cancel := context.WithTimeout(ctx, e.opts.TTL)
		_, err := el.Leader(lctx)
		cancel()
		switch {
		case err == nil:
			since = time.Now() // somebody leads: wait
		case errors.Is(err, concurrency.ErrElectionNoLeader):
			if time.Since(since) >= leaderlessGrace {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(preferenceCheckEvery):
		}
		e.mu.Lock()
		pref = e.preferredLocked(cluster)
		e.mu.Unlock()
		if pref == e.opts.Replica {
			return true
		}
	}
	return false
}

// hold keeps the leadership until the session ends, ctx ends, or it hands the cluster back.
func (e *Elector) hold(ctx context.Context, s *concurrency.Session, el *concurrency.Election, cluster string) {
	t := time.NewTicker(handBackEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.Done():
			return
		case <-t.C:
			e.mu.Lock()
			pref := e.preferredLocked(cluster)
			e.mu.Unlock()
			if pref != e.opts.Replica && !e.opts.Busy(cluster) {
				e.log.Info("handing cluster back to its preferred replica", "cluster", cluster, "to", pref)
				return
			}
		}
	}
}

func (e *Elector) gain(cluster string, l *leadership) {
	e.mu.Lock()
	e.leading[cluster] = l
	e.mu.Unlock()
	e.m.leader.WithLabelValues(cluster).Set(1)
	e.m.changes.WithLabelValues(cluster).Inc()
	e.log.Info("leading cluster", "cluster", cluster, "fence", l.fence.Revision)
	e.notify(cluster)
}

func (e *Elector) lose(cluster string) {
	e.mu.Lock()
	_, had := e.leading[cluster]
	delete(e.leading, cluster)
	e.mu.Unlock()
	if had {
		e.m.leader.WithLabelValues(cluster).Set(0)
		e.m.changes.WithLabelValues(cluster).Inc()
		e.log.Info("no longer leading cluster", "cluster", cluster)
		e.notify(cluster)
	}
}

func (e *Elector) dropAll() {
	for _, c := range e.Leading() {
		e.lose(c)
	}
}

func (e *Elector) notify(cluster string) {
	select {
	case e.changes <- cluster:
	default: // the consumer re-reads every cluster it cares about on any change it sees
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

type metrics struct {
	leader  *prometheus.GaugeVec
	changes *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "zmy_responder", Name: "leader",
			Help: "1 when this replica leads the cluster (probes, silences and runs its runbook)."}, []string{"cluster"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "zmy_responder", Name: "leader_changes_total",
			Help: "Times this replica gained or lost the leadership of the cluster."}, []string{"cluster"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.leader, err = promreg.Register(reg, m.leader); err != nil {
		return nil, err
	}
	if m.changes, err = promreg.Register(reg, m.changes); err != nil {
		return nil, err
	}
	return m, nil
}
