package sim

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/zmyorg/zmy-responder/internal/testenv"
)

func TestEtcdLeaseKeys(t *testing.T) {
	endpoint := testenv.StartEtcd(t)
	c, err := Start(t.Context(), Options{Cluster: "lease", Nodes: 3, ElectionDelay: 100 * time.Millisecond,
		EtcdEndpoints: []string{endpoint}, EtcdLeaseTTL: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer cli.Close()
	keys := func() map[string]int64 {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		resp, err := cli.Get(ctx, "/zmy/lease/nodes/", clientv3.WithPrefix())
		require.NoError(t, err)
		out := map[string]int64{}
		for _, kv := range resp.Kvs {
			out[string(kv.Key)] = kv.Lease
		}
		return out
	}
	waitFor(t, 10*time.Second, "three lease keys", func() bool { return len(keys()) == 3 })
	for k, lease := range keys() {
		require.NotZero(t, lease, "%s is bound to a lease", k)
	}

	// Live keys outlive their TTL (renewed); the killed node's key expires.
	require.NoError(t, c.Kill("n2"))
	killedAt := time.Now()
	waitFor(t, 8*time.Second, "n2's key to expire", func() bool {
		_, ok := keys()["/zmy/lease/nodes/n2"]
		return !ok
	})
	require.GreaterOrEqual(t, time.Since(killedAt), time.Second, "the key expired with its lease, not revoked")
	got := keys()
	require.Contains(t, got, "/zmy/lease/nodes/n1")
	require.Contains(t, got, "/zmy/lease/nodes/n3")

	require.NoError(t, c.Restart("n2"))
	waitFor(t, 10*time.Second, "n2 re-registers", func() bool { return len(keys()) == 3 })
}
