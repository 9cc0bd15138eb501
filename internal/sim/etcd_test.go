package sim

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// startEtcd runs an embedded single-member etcd on free loopback ports.
func startEtcd(t *testing.T) string {
	t.Helper()
	free := func() url.URL {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		return url.URL{Scheme: "http", Host: ln.Addr().String()}
	}
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.Name = "sim-test"
	client, peer := free(), free()
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = fmt.Sprintf("%s=%s", cfg.Name, peer.String())
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	require.NoError(t, err)
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(20 * time.Second):
		t.Fatal("embedded etcd not ready within 20s")
	}
	return client.String()
}

func TestEtcdLeaseKeys(t *testing.T) {
	endpoint := startEtcd(t)
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
