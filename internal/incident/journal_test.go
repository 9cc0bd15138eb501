package incident

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func openTest(t *testing.T, dir string) *Journal {
	t.Helper()
	j, err := Open(dir, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	return j
}

func delivery(cluster, fp, status string, startsAt time.Time) Delivery {
	return Delivery{
		Cluster: cluster, Alertname: "ZMY_Quorum_Down", Known: true,
		Alert: AlertRecord{
			GroupKey: `{}:{alertname="ZMY_Quorum_Down"}`, Receiver: "zmy", Fingerprint: fp, Status: status,
			Labels:   map[string]string{"alertname": "ZMY_Quorum_Down", "cluster": cluster},
			StartsAt: startsAt, ExternalURL: "http://am1:9093",
		},
	}
}

// Concurrent ingests share bbolt commits (group commit); the conformance suite checks what they
// journal.
func TestConcurrentIngestSharesCommits(t *testing.T) {
	j := openTest(t, t.TempDir())
	const calls = 640
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			_, err := j.Ingest(t.Context(), []Delivery{delivery(fmt.Sprintf("c%d", i%4), "fp", "firing", t0)})
			require.NoError(t, err)
		})
	}
	wg.Wait()
	stats := j.db.Stats()
	require.Less(t, stats.TxStats.GetWrite(), int64(calls))
}

// TestIngestLeavesRecordAlone: a plain delivery only writes its alert; the incident record (which
// the engine fills with evidence and commands) is neither decoded nor rewritten. Records written
// before the meta bucket existed still route.
func TestIngestLeavesRecordAlone(t *testing.T) {
	ctx := t.Context()
	clock := t0
	j, err := Open(t.TempDir(), Options{Now: func() time.Time { clock = clock.Add(time.Second); return clock }})
	require.NoError(t, err)
	defer j.Close()
	_, err = j.Ingest(ctx, []Delivery{delivery("east", "aaa", "firing", t0)})
	require.NoError(t, err)
	before, err := j.Update(ctx, "inc-000001", func(inc *Incident) error { inc.Step = StepConfirming; return nil })
	require.NoError(t, err)

	_, err = j.Ingest(ctx, []Delivery{delivery("east", "bbb", "firing", t0), delivery("east", "aaa", "firing", t0)})
	require.NoError(t, err)
	after, err := j.Get(ctx, "inc-000001")
	require.NoError(t, err)
	require.Equal(t, before.UpdatedAt, after.UpdatedAt, "record not rewritten by a plain delivery")
	require.Len(t, after.Alerts, 2)

	// Without its meta byte the record is decoded instead, with the same routing.
	require.NoError(t, j.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(seqKey(1)) }))
	res, err := j.Ingest(ctx, []Delivery{delivery("east", "ccc", "firing", t0)})
	require.NoError(t, err)
	require.Equal(t, IngestResult{IncidentID: "inc-000001", Open: true}, res[0])
}

// An incident journaled before alert counts existed has its alerts counted the first time the
// cap is checked, then the count is kept.
func TestAlertCapWithoutCounts(t *testing.T) {
	ctx := t.Context()
	j := openTest(t, t.TempDir())
	for _, fp := range []string{"a", "b", "c"} {
		_, err := j.Ingest(ctx, []Delivery{delivery("east", fp, "firing", t0)})
		require.NoError(t, err)
	}
	require.NoError(t, j.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketCounts).Delete(seqKey(1)) }))
	d := delivery("east", "d", "firing", t0)
	d.MaxAlerts = 3
	res, err := j.Ingest(ctx, []Delivery{d})
	require.NoError(t, err)
	require.True(t, res[0].Dropped, "the three stored alerts were counted")
	inc, err := j.Get(ctx, "inc-000001")
	require.NoError(t, err)
	require.Len(t, inc.Alerts, 3)
	require.Equal(t, 1, inc.DroppedAlerts)
}

// Pruned, an incident leaves nothing behind in any bucket but the prune count.
func TestPruneLeavesNothing(t *testing.T) {
	ctx := t.Context()
	j := openTest(t, t.TempDir())
	d := delivery("east", "a", "firing", t0)
	d.MaxAlerts = 1
	_, err := j.Ingest(ctx, []Delivery{d, delivery("east", "b", "firing", t0)})
	require.NoError(t, err)
	_, err = j.Update(ctx, "inc-000001", func(inc *Incident) error {
		inc.Step, inc.Outcome = StepClosed, OutcomeRecovered
		return nil
	})
	require.NoError(t, err)
	n, err := j.Prune(ctx, time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.NoError(t, j.db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketIncidents, bucketAlerts, bucketOpen, bucketLatest, bucketMeta, bucketCounts} {
			require.Zero(t, tx.Bucket(b).Stats().KeyN, "bucket %s", b)
		}
		return nil
	}))
}

// listingTxn counts the alert listings of an ingest transaction.
type listingTxn struct {
	ingestTxn
	lists int
}

func (l *listingTxn) alertIDs(seq uint64) ([]alertID, error) {
	l.lists++
	return l.ingestTxn.alertIDs(seq)
}

// TestRepeatsDoNotListAlerts: whether every alert is resolved is decided again only when an
// alert was added; a repeat (Alertmanager resends resolved alerts at every group flush) does not
// list the incident's alerts, however many it holds.
func TestRepeatsDoNotListAlerts(t *testing.T) {
	j := openTest(t, t.TempDir())
	lists := func(ds ...Delivery) int {
		t.Helper()
		require.NoError(t, prepareDeliveries(ds))
		var tx *listingTxn
		require.NoError(t, j.db.Update(func(btx *bolt.Tx) error {
			tx = &listingTxn{ingestTxn: newBoltIngest(btx)}
			_, err := ingest(tx, ds, t0)
			return err
		}))
		return tx.lists
	}
	require.Zero(t, lists(delivery("east", "aaa", "firing", t0), delivery("east", "bbb", "firing", t0)))
	require.Equal(t, 1, lists(delivery("east", "aaa", "resolved", t0)), "a new resolved alert: listed")
	require.Zero(t, lists(delivery("east", "aaa", "resolved", t0)), "a repeated resolution")
	require.Equal(t, 1, lists(delivery("east", "bbb", "resolved", t0)), "the last alert resolves")
	inc, err := j.Get(t.Context(), "inc-000001")
	require.NoError(t, err)
	require.NotNil(t, inc.ResolvedAt)
	require.Zero(t, lists(delivery("east", "aaa", "firing", t0), delivery("east", "bbb", "resolved", t0)), "repeats on a resolved incident")
	require.Equal(t, 1, lists(delivery("east", "aaa", "firing", t0.Add(time.Hour))), "a new firing on a resolved incident")
	inc, err = j.Get(t.Context(), "inc-000001")
	require.NoError(t, err)
	require.Nil(t, inc.ResolvedAt)
}
