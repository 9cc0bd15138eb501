package incident_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/incident/storetest"
	"github.com/zmyorg/zmy-responder/internal/testenv"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// TestEtcdKeyLayout: every key is where ARCHITECTURE.md says, and no value comes near etcd's
// request limit, however large the record.
func TestEtcdKeyLayout(t *testing.T) {
	endpoint := testenv.StartEtcd(t)
	cli := etcdClient(t, endpoint)
	s := openEtcd(t, incident.EtcdOptions{Endpoints: []string{endpoint}, Prefix: "/zr"})
	defer s.Close()
	ctx := t.Context()
	d := storetest.Delivery("east/1", "a/b", "firing", t0)
	_, err := s.Ingest(ctx, []incident.Delivery{d})
	require.NoError(t, err)
	_, err = s.Update(ctx, "inc-000001", func(inc *incident.Incident) error {
		inc.Verdict, inc.Commands = storetest.LargeVerdict(200), storetest.LargeCommands(2000)
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, s.UpdateState(ctx, "breaker/east", func([]byte) ([]byte, error) { return []byte("{}"), nil }))

	resp, err := cli.Get(ctx, "/", clientv3.WithPrefix())
	require.NoError(t, err)
	layout := regexp.MustCompile(`^/zr/(id|seq|open/east%2F1/ZMY_Quorum_Down|latest/east%2F1/ZMY_Quorum_Down|state/breaker/east|` +
		`incidents/00000000000000000001/(head|meta|count|part/[0-9a-f]{32}|alert/a%2Fb/[0-9a-f]{24}/firing))$`)
	seen := map[string]int{}
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		require.Regexp(t, layout, k)
		require.Less(t, len(kv.Value), 256<<10, "%s is %d bytes", k, len(kv.Value))
		seen[strings.SplitN(strings.TrimPrefix(k, "/zr/incidents/00000000000000000001/"), "/", 2)[0]]++
	}
	require.Equal(t, 1, seen["head"])
	require.Equal(t, 1, seen["alert"])
	require.Greater(t, seen["part"], 10, "the evidence and the commands are cut into parts")
	head, err := cli.Get(ctx, "/zr/incidents/00000000000000000001/head")
	require.NoError(t, err)
	require.Less(t, len(head.Kvs[0].Value), 16<<10, "the head stays small")

	// Pruned, the incident leaves nothing behind: parts, alerts, counts, its group's pointers.
	_, err = s.Update(ctx, "inc-000001", func(inc *incident.Incident) error {
		inc.Step, inc.Outcome = incident.StepClosed, incident.OutcomeRecovered
		return nil
	})
	require.NoError(t, err)
	n, err := s.Prune(ctx, time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	resp, err = cli.Get(ctx, "/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	require.NoError(t, err)
	var left []string
	for _, kv := range resp.Kvs {
		left = append(left, string(kv.Key))
	}
	require.ElementsMatch(t, []string{"/zr/id", "/zr/seq", "/zr/state/breaker/east", "/zr/prune/count", "/zr/prune/floor"}, left)
}

// Parts left by a writer that died between its parts and its head are deleted by the next update.
func TestEtcdOrphanPartsSwept(t *testing.T) {
	endpoint := testenv.StartEtcd(t)
	cli := etcdClient(t, endpoint)
	s := openEtcd(t, incident.EtcdOptions{Endpoints: []string{endpoint}, Prefix: "/zr/"})
	defer s.Close()
	ctx := t.Context()
	_, err := s.Ingest(ctx, []incident.Delivery{storetest.Delivery("east", "aaa", "firing", t0)})
	require.NoError(t, err)
	orphan := "/zr/incidents/00000000000000000001/part/00000000000000000000000000000000"
	_, err = cli.Put(ctx, orphan, "x")
	require.NoError(t, err)
	// Written after the head: it may be a writer's that is about to commit, so it stays.
	_, err = s.Update(ctx, "inc-000001", func(inc *incident.Incident) error { inc.Step = incident.StepConfirming; return nil })
	require.NoError(t, err)
	got, err := cli.Get(ctx, orphan)
	require.NoError(t, err)
	require.Len(t, got.Kvs, 1)
	// Older than the head now: nobody can name it any more.
	_, err = s.Update(ctx, "inc-000001", func(inc *incident.Incident) error { inc.Step = incident.StepSilencing; return nil })
	require.NoError(t, err)
	got, err = cli.Get(ctx, orphan)
	require.NoError(t, err)
	require.Empty(t, got.Kvs)
	inc, err := s.Get(ctx, "inc-000001")
	require.NoError(t, err)
	require.Equal(t, incident.StepSilencing, inc.Step)
}

// A notification larger than one transaction is committed in several, all of it.
func TestEtcdLargeNotification(t *testing.T) {
	endpoint := testenv.StartEtcd(t)
	s := openEtcd(t, incident.EtcdOptions{Endpoints: []string{endpoint}})
	defer s.Close()
	ds := make([]incident.Delivery, 3000)
	for i := range ds {
		ds[i] = storetest.Delivery(fmt.Sprintf("c%d", i%3), fmt.Sprintf("fp%04d", i), "firing", t0)
	}
	res, err := s.Ingest(t.Context(), ds)
	require.NoError(t, err)
	require.Len(t, res, len(ds))
	open, err := s.List(t.Context(), true)
	require.NoError(t, err)
	require.Len(t, open, 3)
	for _, inc := range open {
		require.Len(t, inc.Alerts, 1000)
	}
	require.True(t, res[0].Created)
	require.False(t, res[2999].Created)
}

// One alert too large for etcd fails its own call with a reason, not the calls it would have
// shared a transaction with.
func TestEtcdOversizedAlert(t *testing.T) {
	endpoint := testenv.StartEtcd(t)
	s := openEtcd(t, incident.EtcdOptions{Endpoints: []string{endpoint}})
	d := storetest.Delivery("east", "aaa", "firing", t0)
	d.Alert.Labels["description"] = strings.Repeat("x", 400<<10)
	_, err := s.Ingest(t.Context(), []incident.Delivery{d})
	require.ErrorContains(t, err, "over the etcd store's limit of 262144 for one alert")
	_, err = s.Ingest(t.Context(), []incident.Delivery{storetest.Delivery("east", "bbb", "firing", t0)})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = s.Ingest(t.Context(), []incident.Delivery{storetest.Delivery("east", "bbb", "firing", t0)})
	require.ErrorContains(t, err, "closed")
}
