package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// tick is how often the model advances elections and the write load.
const tick = 20 * time.Millisecond

// Cluster is a running simulated cluster: the model, one set of servers per node, the write
// load and (optionally) the control API and etcd registrations.
type Cluster struct {
	opts Options
	log  *slog.Logger

	mu    sync.Mutex // guards m, rate, audit
	m     *model
	rate  float64
	audit []AuditEntry

	nodes   []*nodeServer
	peers   []string   // peer port address of every node; fixed before serving starts
	portsMu sync.Mutex // serializes listener reconciliation

	claimsMu sync.Mutex
	claims   []*os.File // the node ports' claims (claimPort), released by Close

	admin     *http.Server
	adminAddr string
	etcd      *clientv3.Client

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Start builds the cluster, opens every node's ports and starts the write load. The cluster
// runs until ctx ends or Close is called.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if err := opts.applyDefaults(); err != nil {
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	c := &Cluster{
		opts:   opts,
		log:    opts.Logger,
		m:      newModel(opts.Nodes, opts.Shards, opts.ElectionDelay, time.Now()),
		rate:   opts.WriteRate,
		ctx:    ctx,
		cancel: cancel,
	}
	for i := range opts.Nodes {
		c.nodes = append(c.nodes, newNodeServer(c, i))
	}
	if err := c.listenAll(); err != nil {
		c.Close()
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	if opts.AdminAddress != "" {
		if err := c.serveAdmin(opts.AdminAddress); err != nil {
			c.Close()
			return nil, fmt.Errorf("start simulator: %w", err)
		}
	}
	if len(opts.EtcdEndpoints) > 0 {
		if err := c.startEtcd(); err != nil {
			c.Close()
			return nil, fmt.Errorf("start simulator: %w", err)
		}
	}
	c.wg.Go(c.run)
	context.AfterFunc(ctx, func() { c.Close() })
	return c, nil
}

// listenAll binds every node's three ports on free ports; they are reused on restart.
func (c *Cluster) listenAll() error {
	all := make([][3]net.Listener, len(c.nodes))
	for i, s := range c.nodes {
		lns, err := s.bindFresh()
		if err != nil {
			for _, bound := range all[:i] {
				for _, ln := range bound {
					_ = ln.Close()
				}
			}
			return fmt.Errorf("open ports of %s: %w", s.id, err)
		}
		all[i] = lns
	}
	c.peers = make([]string, len(c.nodes))
	for i, s := range c.nodes {
		c.peers[i] = s.peerAddr
	}
	for i, s := range c.nodes {
		s.serveFresh(all[i])
	}
	return nil
}

// run advances the model: elections, replication and the write load.
func (c *Cluster) run() {
	t := time.NewTicker(tick)
	defer t.Stop()
	last := time.Now()
	var pending float64
	for {
		select {
		case <-c.ctx.Done():
			return
		case now := <-t.C:
			c.mu.Lock()
			c.m.step(now)
			pending += c.rate * now.Sub(last).Seconds()
			last = now
			// A stalled process must not release a burst of thousands of writes at once.
			pending = min(pending, c.rate+1)
			for ; pending >= 1; pending-- {
				c.m.write(now)
			}
			c.mu.Unlock()
		}
	}
}

// Close stops the write load and every server. It is safe to call more than once.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		if c.admin != nil {
			_ = c.admin.Close()
		}
		c.portsMu.Lock()
		for _, s := range c.nodes {
			s.stop()
		}
		c.portsMu.Unlock()
		c.wg.Wait()
		if c.etcd != nil {
			_ = c.etcd.Close()
		}
		c.claimsMu.Lock()
		for _, f := range c.claims {
			if f != nil {
				_ = f.Close()
			}
		}
		c.claims = nil
		c.claimsMu.Unlock()
	})
	return nil
}

// update runs fn on the model under the lock, then advances it and reconciles the node
// ports with the new topology.
func (c *Cluster) update(fn func(m *model, now time.Time) error) error {
	c.mu.Lock()
	now := time.Now()
	err := fn(c.m, now)
	if err == nil {
		c.m.recomputeTopology(now)
		c.m.step(now)
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.reconcilePorts()
}

// reconcilePorts opens and closes listeners to match the model: killed nodes have no ports,
// and a node cut off from the responder's side (or firewalled) refuses TCP on its peer port.
func (c *Cluster) reconcilePorts() error {
	c.portsMu.Lock()
	defer c.portsMu.Unlock()
	if c.ctx.Err() != nil {
		return nil
	}
	type want struct{ up, peer bool }
	wants := make([]want, len(c.nodes))
	c.mu.Lock()
	for i := range c.nodes {
		wants[i] = want{up: !c.m.nodes[i].killed, peer: c.m.peerOpen(i)}
	}
	c.mu.Unlock()
	var errs []error
	for i, s := range c.nodes {
		if err := s.reconcile(wants[i].up, wants[i].peer); err != nil {
			errs = append(errs, fmt.Errorf("reconcile ports of %s: %w", s.id, err))
		}
	}
	return errors.Join(errs...)
}

// Endpoints describes the cluster's addresses; it is what `run` prints when ready.
func (c *Cluster) Endpoints() ReadyInfo {
	info := ReadyInfo{Cluster: c.opts.Cluster, Admin: c.adminAddr}
	if c.adminAddr != "" {
		info.AdminURL = "http://" + c.adminAddr
	}
	for _, s := range c.nodes {
		info.Nodes = append(info.Nodes, s.endpoints())
	}
	return info
}

// AdminAddress is the host:port of the control API, "" when it is disabled.
func (c *Cluster) AdminAddress() string { return c.adminAddr }

func hostPort(host string, port int) string { return net.JoinHostPort(host, fmt.Sprint(port)) }
