package ha

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// replica is one Elector on its own etcd client, run until stopped.
type replica struct {
	name   string
	cli    *clientv3.Client
	e      *Elector
	cancel context.CancelFunc
	done   chan struct{}
}

func startReplica(t *testing.T, endpoint, name string, clusters ...string) *replica {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	e, err := NewElector(Options{Client: cli, Prefix: "/t/", Replica: name, TTL: 2 * time.Second})
	require.NoError(t, err)
	e.SetClusters(clusters)
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{name: name, cli: cli, e: e, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); _ = e.Run(ctx) }()
	t.Cleanup(func() { r.stop(); _ = cli.Close() })
	return r
}

func (r *replica) stop() {
	r.cancel()
	<-r.done
}

// leaders maps each cluster to the replicas acting on it now.
func leaders(rs []*replica, clusters ...string) map[string][]string {
	out := map[string][]string{}
	for _, c := range clusters {
		for _, r := range rs {
			if _, err := r.e.Acting(c); err == nil {
				out[c] = append(out[c], r.name)
			}
		}
	}
	return out
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two clusters, three replicas: each cluster has exactly one acting leader, on different
// replicas; the others are told why they must not act.
func TestOneLeaderPerClusterSpread(t *testing.T) {
	ep := testenv.StartEtcd(t)
	var rs []*replica
	for i := range 3 {
		rs = append(rs, startReplica(t, ep, fmt.Sprintf("r%d", i+1), "alpha", "beta"))
	}
	eventually(t, 15*time.Second, "one leader each, on two replicas", func() bool {
		l := leaders(rs, "alpha", "beta")
		return len(l["alpha"]) == 1 && len(l["beta"]) == 1 && l["alpha"][0] != l["beta"][0]
	})
	l := leaders(rs, "alpha", "beta")
	for _, r := range rs {
		f, err := r.e.Acting("alpha")
		if r.name == l["alpha"][0] {
			require.NoError(t, err)
			require.NotEmpty(t, f.Key)
			require.Positive(t, f.Revision)
			require.True(t, f.Until.After(time.Now()), "a command started now is bounded by a future instant")
			require.False(t, f.Until.After(time.Now().Add(r.e.opts.TTL)), "within one lease TTL")
		} else {
			require.ErrorIs(t, err, ErrNotLeader)
			require.ErrorIs(t, err, ErrNotActing)
		}
	}
}

// A replica that stops resigns: another takes the cluster at once, with a new fence.
func TestGracefulStopHandsOver(t *testing.T) {
	ep := testenv.StartEtcd(t)
	a := startReplica(t, ep, "a", "alpha")
	eventually(t, 10*time.Second, "a leads", func() bool { _, err := a.e.Acting("alpha"); return err == nil })
	before, _ := a.e.Acting("alpha")
	b := startReplica(t, ep, "b", "alpha")
	a.stop()
	eventually(t, 10*time.Second, "b leads", func() bool { _, err := b.e.Acting("alpha"); return err == nil })
	after, _ := b.e.Acting("alpha")
	require.NotEqual(t, before, after, "a new leader, a new fence")
	_, err := a.e.Acting("alpha")
	require.Error(t, err)
}

// A leader cut off from etcd stops acting on its own before its lease can expire, and another
// replica takes over once the lease expired.
func TestCutOffLeaderGoesStale(t *testing.T) {
	ep := testenv.StartEtcd(t)
	a := startReplica(t, ep, "a", "alpha")
	eventually(t, 10*time.Second, "a leads", func() bool { _, err := a.e.Acting("alpha"); return err == nil })
	b := startReplica(t, ep, "b", "alpha")
	require.NoError(t, a.cli.Close()) // no more keepalives: as if the host froze or the network died
	// Never both at once: a stops acting on its own before b can lead.
	eventually(t, 20*time.Second, "b leads", func() bool {
		_, errA := a.e.Acting("alpha")
		_, errB := b.e.Acting("alpha")
		require.False(t, errA == nil && errB == nil, "two replicas act on one cluster")
		return errB == nil
	})
	_, err := a.e.Acting("alpha")
	require.ErrorIs(t, err, ErrNotActing)
}

// Single acts on everything, unfenced.
func TestSingle(t *testing.T) {
	f, err := Single{}.Acting("any")
	require.NoError(t, err)
	require.Empty(t, f.Key)
}
