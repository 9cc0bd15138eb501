package incident

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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

func TestIngestDedup(t *testing.T) {
	ctx := t.Context()
	j := openTest(t, t.TempDir())

	res, err := j.Ingest(ctx, []Delivery{delivery("east", "aaa", "firing", t0)})
	require.NoError(t, err)
	require.Equal(t, []IngestResult{{IncidentID: "inc-000001", Created: true, Open: true}}, res)

	// A resend, another replica, another node's alert of the same group: all attach.
	res, err = j.Ingest(ctx, []Delivery{
		delivery("east", "aaa", "firing", t0),
		delivery("east", "bbb", "firing", t0.Add(time.Second)),
	})
	require.NoError(t, err)
	require.Equal(t, []IngestResult{{"inc-000001", false, true}, {"inc-000001", false, true}}, res)

	// Another cluster is another incident.
	res, err = j.Ingest(ctx, []Delivery{delivery("west", "ccc", "firing", t0)})
	require.NoError(t, err)
	require.Equal(t, []IngestResult{{"inc-000002", true, true}}, res)

	inc, err := j.Get(ctx, "inc-000001")
	require.NoError(t, err)
	require.Equal(t, StepReceived, inc.Step)
	require.True(t, inc.Open())
	require.Len(t, inc.Alerts, 2)
	require.Equal(t, "aaa", inc.Alerts[0].Fingerprint)
	require.Equal(t, 2, inc.Alerts[0].Deliveries)
	require.Equal(t, 1, inc.Alerts[1].Deliveries)
	require.Equal(t, `{}:{alertname="ZMY_Quorum_Down"}`, inc.Alerts[0].GroupKey)

	n, err := j.OpenCount()
	require.NoError(t, err)
	require.Equal(t, 2, n)

	_, err = j.Get(ctx, "inc-000099")
	require.ErrorIs(t, err, ErrNotFound)
	_, err = j.Get(ctx, "nope")
	require.ErrorIs(t, err, ErrNotFound)
}

func TestIngestResendsStayCompact(t *testing.T) {
	ctx := t.Context()
	j := openTest(t, t.TempDir())
	for range 100 {
		batch := make([]Delivery, 100)
		for i := range batch {
			batch[i] = delivery("east", "aaa", "firing", t0)
		}
		_, err := j.Ingest(ctx, batch)
		require.NoError(t, err)
	}
	inc, err := j.Get(ctx, "inc-000001")
	require.NoError(t, err)
	require.Len(t, inc.Alerts, 1)
	require.Equal(t, 10000, inc.Alerts[0].Deliveries)
}

func TestIngestResolution(t *testing.T) {
	ctx := t.Context()
	j := openTest(t, t.TempDir())
	get := func() *Incident {
		inc, err := j.Get(ctx, "inc-000001")
		require.NoError(t, err)
		return inc
	}
	ingest := func(ds ...Delivery) {
		_, err := j.Ingest(ctx, ds)
		require.NoError(t, err)
	}

	ingest(delivery("east", "aaa", "firing", t0), delivery("east", "bbb", "firing", t0))
	ingest(delivery("east", "aaa", "resolved", t0))
	require.Nil(t, get().ResolvedAt, "bbb still fires")

	ingest(delivery("east", "bbb", "resolved", t0))
	require.NotNil(t, get().ResolvedAt, "every alert resolved")

	// A lagging replica resending the old firing notification does not undo the resolution.
	ingest(delivery("east", "aaa", "firing", t0))
	require.NotNil(t, get().ResolvedAt)

	// A genuinely new firing (later startsAt) does.
	ingest(delivery("east", "aaa", "firing", t0.Add(time.Hour)))
	inc := get()
	require.Nil(t, inc.ResolvedAt)
	require.True(t, inc.Open())
	require.Len(t, inc.Alerts, 5)

	// A resolved alert for a group never seen firing is journaled on a closed incident.
	res, err := j.Ingest(ctx, []Delivery{delivery("north", "zzz", "resolved", t0)})
	require.NoError(t, err)
	require.True(t, res[0].Created)
	n, err := j.Get(ctx, res[0].IncidentID)
	require.NoError(t, err)
	require.Equal(t, OutcomeSelfHealed, n.Outcome)
	require.NotNil(t, n.ResolvedAt)
}

func TestIngestUnknownCluster(t *testing.T) {
	ctx := t.Context()
	j := openTest(t, t.TempDir())
	d := delivery("ghost", "aaa", "firing", t0)
	d.Known = false
	res1, err := j.Ingest(ctx, []Delivery{d})
	require.NoError(t, err)
	res2, err := j.Ingest(ctx, []Delivery{d})
	require.NoError(t, err)
	require.Equal(t, res1[0].IncidentID, res2[0].IncidentID, "resends reuse the closed unknown_cluster incident")
	require.False(t, res2[0].Created)
	require.False(t, res2[0].Open, "closed at once")

	inc, err := j.Get(ctx, res1[0].IncidentID)
	require.NoError(t, err)
	require.Equal(t, StepClosed, inc.Step)
	require.Equal(t, OutcomeUnknownCluster, inc.Outcome)
	require.NotNil(t, inc.ClosedAt)
	require.Equal(t, 2, inc.Alerts[0].Deliveries)

	open, err := j.List(ctx, true)
	require.NoError(t, err)
	require.Empty(t, open)

	// Once the cluster is configured, its alerts open a real incident.
	d.Known = true
	res3, err := j.Ingest(ctx, []Delivery{d})
	require.NoError(t, err)
	require.True(t, res3[0].Created)
	require.NotEqual(t, res1[0].IncidentID, res3[0].IncidentID)
}

func TestUpdate(t *testing.T) {
	ctx := t.Context()
	j := openTest(t, t.TempDir())
	_, err := j.Ingest(ctx, []Delivery{delivery("east", "aaa", "firing", t0)})
	require.NoError(t, err)

	boom := errors.New("boom")
	_, err = j.Update(ctx, "inc-000001", func(inc *Incident) error {
		inc.Step = StepConfirming
		return boom
	})
	require.ErrorIs(t, err, boom)
	inc, err := j.Get(ctx, "inc-000001")
	require.NoError(t, err)
	require.Equal(t, StepReceived, inc.Step, "an error from fn changes nothing")

	inc, err = j.Update(ctx, "inc-000001", func(inc *Incident) error {
		require.Len(t, inc.Alerts, 1, "fn sees the alerts")
		inc.Step, inc.Outcome = StepClosed, OutcomeNotConfirmed
		inc.Alerts = nil // ignored
		return nil
	})
	require.NoError(t, err)
	require.NotNil(t, inc.ClosedAt)
	inc, err = j.Get(ctx, "inc-000001")
	require.NoError(t, err)
	require.Len(t, inc.Alerts, 1)
	require.Equal(t, OutcomeNotConfirmed, inc.Outcome)

	_, err = j.Update(ctx, "inc-000001", func(inc *Incident) error { inc.Step = StepConfirming; return nil })
	require.ErrorIs(t, err, ErrConflict)
	_, err = j.Update(ctx, "inc-000042", func(*Incident) error { return nil })
	require.ErrorIs(t, err, ErrNotFound)

	// Closed: the next firing opens a second incident.
	res, err := j.Ingest(ctx, []Delivery{delivery("east", "aaa", "firing", t0)})
	require.NoError(t, err)
	require.Equal(t, IngestResult{"inc-000002", true, true}, res[0])

	all, err := j.List(ctx, false)
	require.NoError(t, err)
	require.Equal(t, "inc-000002", all[0].ID, "newest first")
	require.Equal(t, "inc-000001", all[1].ID)
}

func TestState(t *testing.T) {
	ctx := t.Context()
	j := openTest(t, t.TempDir())
	got, err := j.GetState(ctx, "cluster/east")
	require.NoError(t, err)
	require.Nil(t, got)
	require.NoError(t, j.UpdateState(ctx, "cluster/east", func(cur []byte) ([]byte, error) {
		require.Nil(t, cur)
		return []byte(`{"paused":true}`), nil
	}))
	got, err = j.GetState(ctx, "cluster/east")
	require.NoError(t, err)
	require.JSONEq(t, `{"paused":true}`, string(got))

	// An error from fn leaves the document as it was; nil deletes it.
	require.ErrorIs(t, j.UpdateState(ctx, "cluster/east", func([]byte) ([]byte, error) { return nil, ErrConflict }), ErrConflict)
	got, err = j.GetState(ctx, "cluster/east")
	require.NoError(t, err)
	require.JSONEq(t, `{"paused":true}`, string(got))
	require.NoError(t, j.UpdateState(ctx, "cluster/east", func([]byte) ([]byte, error) { return nil, nil }))
	got, err = j.GetState(ctx, "cluster/east")
	require.NoError(t, err)
	require.Nil(t, got)
}

// Concurrent read-modify-writes of one document lose nothing: each sees the previous answer.
func TestStateUpdatesAreAtomic(t *testing.T) {
	ctx := t.Context()
	j := openTest(t, t.TempDir())
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			require.NoError(t, j.UpdateState(ctx, "counter", func(cur []byte) ([]byte, error) {
				n := 0
				if cur != nil {
					n, _ = strconv.Atoi(string(cur))
				}
				return []byte(strconv.Itoa(n + 1)), nil
			}))
		})
	}
	wg.Wait()
	got, err := j.GetState(ctx, "counter")
	require.NoError(t, err)
	require.Equal(t, "20", string(got))
}

// TestConcurrentIngest is the Alertmanager HA case: replicas and retries deliver the same groups
// at the same time; each group must get exactly one incident and every delivery is counted.
func TestConcurrentIngest(t *testing.T) {
	ctx := t.Context()
	reg := prometheus.NewRegistry()
	j, err := Open(filepath.Join(t.TempDir(), "j.db"), Options{Registerer: reg})
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })

	const senders, each, groups = 32, 20, 4
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				c := fmt.Sprintf("c%d", (s+i)%groups)
				if _, err := j.Ingest(ctx, []Delivery{delivery(c, "fp-"+c, "firing", t0)}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	open, err := j.List(ctx, true)
	require.NoError(t, err)
	require.Len(t, open, groups)
	total := 0
	for _, inc := range open {
		require.Len(t, inc.Alerts, 1)
		total += inc.Alerts[0].Deliveries
	}
	require.Equal(t, senders*each, total)
	// Every call is observed; group commit shows up as far fewer commits than calls.
	require.Equal(t, 1, testutil.CollectAndCount(reg, "zmy_responder_journal_write_duration_seconds"))
	stats := j.db.Stats()
	require.Less(t, stats.TxStats.GetWrite(), int64(senders*each), "concurrent ingests share commits")
}

func TestRestart(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	j, err := Open(dir, Options{})
	require.NoError(t, err)
	for i := range 10 {
		_, err := j.Ingest(ctx, []Delivery{delivery(fmt.Sprintf("c%d", i), "fp", "firing", t0)})
		require.NoError(t, err)
	}
	_, err = j.Update(ctx, "inc-000003", func(inc *Incident) error { inc.Step = StepClosed; inc.Outcome = OutcomeRecovered; return nil })
	require.NoError(t, err)
	require.NoError(t, j.Close())

	j, err = Open(dir, Options{})
	require.NoError(t, err)
	defer j.Close()
	all, err := j.List(ctx, false)
	require.NoError(t, err)
	require.Len(t, all, 10)
	open, err := j.List(ctx, true)
	require.NoError(t, err)
	require.Len(t, open, 9)
	inc, err := j.Get(ctx, "inc-000003")
	require.NoError(t, err)
	require.Equal(t, OutcomeRecovered, inc.Outcome)

	// Dedup survives the restart, and IDs continue from the stored sequence.
	res, err := j.Ingest(ctx, []Delivery{delivery("c0", "fp", "firing", t0), delivery("c2", "fp", "firing", t0)})
	require.NoError(t, err)
	require.Equal(t, []IngestResult{{"inc-000001", false, true}, {"inc-000011", true, true}}, res)
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
	require.Equal(t, IngestResult{"inc-000001", false, true}, res[0])
}

// A journal keeps its identity across reopenings; another file has another one.
func TestJournalID(t *testing.T) {
	dir := t.TempDir()
	j := openTest(t, dir)
	id := j.ID()
	require.Regexp(t, `^j[0-9a-f]{12}$`, id)
	require.NoError(t, j.Close())
	again, err := Open(dir, Options{})
	require.NoError(t, err)
	defer again.Close()
	require.Equal(t, id, again.ID())
	require.NotEqual(t, id, openTest(t, t.TempDir()).ID())
}
