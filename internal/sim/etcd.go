package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// startEtcd connects to etcd; every live node then keeps its lease key (seed §2.1).
func (c *Cluster) startEtcd() error {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   c.opts.EtcdEndpoints,
		DialTimeout: 2 * time.Second,
		Context:     c.ctx,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return fmt.Errorf("connect to etcd %v: %w", c.opts.EtcdEndpoints, err)
	}
	c.etcd = cli
	for _, s := range c.nodes {
		s.mu.Lock()
		if s.httpSrv != nil {
			s.startEtcdLocked()
		}
		s.mu.Unlock()
	}
	return nil
}

// EtcdKey is the lease key of a node.
func (c *Cluster) EtcdKey(node string) string { return c.opts.EtcdPrefix + node }

// startEtcdLocked registers the node under a fresh lease and keeps it alive until the node is
// killed. A killed node revokes nothing: its key disappears when the lease expires.
func (s *nodeServer) startEtcdLocked() {
	cli := s.c.etcd
	if cli == nil || s.etcdStop != nil {
		return
	}
	ctx, cancel := context.WithCancel(s.c.ctx)
	s.etcdStop = cancel
	key := s.c.EtcdKey(s.id)
	val, _ := json.Marshal(map[string]string{"node": s.id, "admin": "http://" + s.httpAddr, "peer": s.peerAddr})
	ttl := int64(max(s.c.opts.EtcdLeaseTTL/time.Second, 1))
	s.c.wg.Go(func() {
		for ctx.Err() == nil {
			if err := keepLease(ctx, cli, key, string(val), ttl); err != nil && ctx.Err() == nil {
				s.c.log.Warn("etcd lease lost; registering again", "node", s.id, "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}
	})
}

func (s *nodeServer) stopEtcdLocked() {
	if s.etcdStop != nil {
		s.etcdStop()
		s.etcdStop = nil
	}
}

// keepLease grants a lease, puts key under it and renews it (the client renews every TTL/3)
// until ctx ends or the lease is lost.
func keepLease(ctx context.Context, cli *clientv3.Client, key, val string, ttl int64) error {
	callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	lease, err := cli.Grant(callCtx, ttl)
	if err != nil {
		cancel()
		return fmt.Errorf("grant lease for %s: %w", key, err)
	}
	_, err = cli.Put(callCtx, key, val, clientv3.WithLease(lease.ID))
	cancel()
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	ch, err := cli.KeepAlive(ctx, lease.ID)
	if err != nil {
		return fmt.Errorf("keep lease of %s alive: %w", key, err)
	}
	for range ch {
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("lease of %s expired or etcd went away", key)
}
