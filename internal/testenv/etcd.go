package testenv

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// StartEtcd runs an embedded single-member etcd on free loopback ports in a temporary
// directory until the test ends, and returns its client endpoint (http://127.0.0.1:port).
// Options change the configuration before it starts (e.g. a lower MaxRequestBytes).
func StartEtcd(t testing.TB, options ...func(*embed.Config)) string {
	t.Helper()
	free := func() url.URL { return url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", FreePort(t))} }
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.Name = "testenv"
	client, peer := free(), free()
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	for _, o := range options {
		o(cfg)
	}
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
