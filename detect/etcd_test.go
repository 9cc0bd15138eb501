package detect

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/testenv"
)

func TestProbeEtcdLeases(t *testing.T) {
	ep := testenv.StartEtcd(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer cli.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// n1 keeps its key on a long lease, as a live node renewing it does; n2's 2s lease is never
	// renewed, as if n2 had been killed.
	long, err := cli.Grant(ctx, 60)
	require.NoError(t, err)
	_, err = cli.Put(ctx, "/zmy/c1/nodes/n1", "alive", clientv3.WithLease(long.ID))
	require.NoError(t, err)
	short, err := cli.Grant(ctx, 2)
	require.NoError(t, err)
	_, err = cli.Put(ctx, "/zmy/c1/nodes/n2", "alive", clientv3.WithLease(short.ID))
	require.NoError(t, err)

	cluster := &config.ClusterConfig{Name: "c1", Etcd: &config.EtcdConfig{Endpoints: []string{ep}},
		Nodes: []config.NodeConfig{{ID: "n1"}, {ID: "n2"}}}
	probe := func() Result {
		pctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		return run(pctx, ProbeEtcd, Target{Cluster: cluster})
	}

	r := probe()
	require.Equal(t, StatusOK, r.Status, r.Reason)
	er := r.Data.(*EtcdReading)
	require.True(t, er.Healthy())
	require.Equal(t, []string{"n1", "n2"}, er.Present)

	// The lease expires: n2's key is gone and the gate reading says so.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = probe()
		if r.Status != StatusOK || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.Equal(t, StatusFail, r.Status, "n2's 2s lease should have expired within 10s")
	er = r.Data.(*EtcdReading)
	require.False(t, er.Healthy())
	require.Equal(t, []string{"n2"}, er.Missing)
	require.Contains(t, r.Reason, "no lease key for n2")

	// A second, dead endpoint makes the etcd unhealthy even though the first still answers.
	dead := "http://" + closedAddr(t)
	cluster.Etcd.Endpoints = []string{ep, dead}
	_, err = cli.Put(ctx, "/zmy/c1/nodes/n2", "back")
	require.NoError(t, err)
	r = probe()
	require.Equal(t, StatusFail, r.Status)
	er = r.Data.(*EtcdReading)
	require.True(t, er.Endpoints[0].Healthy)
	require.False(t, er.Endpoints[1].Healthy)
	require.Contains(t, r.Reason, "unhealthy etcd endpoints: "+dead)
	require.Empty(t, er.Missing)

	// Only dead endpoints: no answer at all.
	cluster.Etcd.Endpoints = []string{dead}
	start := time.Now()
	r = probe()
	require.Equal(t, StatusError, r.Status)
	require.Less(t, time.Since(start), 3*time.Second, "bounded by the probe deadline")
}

func TestKeyPrefix(t *testing.T) {
	c := &config.ClusterConfig{Name: "east", Etcd: &config.EtcdConfig{}}
	require.Equal(t, "/zmy/east/nodes/", KeyPrefix(Target{Cluster: c}))
	c.Etcd.KeyPrefix = "/custom/"
	require.Equal(t, "/custom/", KeyPrefix(Target{Cluster: c}))
}
