package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// Backend is a store implementation under test.
type Backend struct {
	// New makes a fresh, empty storage and returns what opens a store over it. Opening again
	// after Close reopens the same data; t's cleanup removes the storage.
	New func(t *testing.T) Opener
	// Shared says several stores may be open over one storage at once, as replicas are.
	Shared bool
	// Campaign (re)creates the key and returns a fence on it; Resign deletes the key. Nil for a
	// store that ignores fences.
	Campaign func(t *testing.T, key string) incident.Fence
	Resign   func(t *testing.T, key string)
}

// Opener opens a store over one storage.
type Opener func(t *testing.T, s Setup) Store

// open opens a store closed at the end of the test.
func (o Opener) open(t *testing.T, s Setup) Store {
	t.Helper()
	st := o(t, s)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// replicas opens one store, or two over the same storage when the backend is shared.
func replicas(t *testing.T, b Backend) []Store {
	open := b.New(t)
	stores := []Store{open.open(t, Setup{})}
	if b.Shared {
		stores = append(stores, open.open(t, Setup{}))
	}
	return stores
}

// concurrently runs workers goroutines that each call fn each times, and fails the test with
// the first error (a worker stops at its own first error).
func concurrently(t *testing.T, workers, each int, fn func(worker, i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := fn(w, i); err != nil {
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
}

// Run runs the conformance suite against b.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		run  func(*testing.T, Backend)
	}{
		{"IngestDedup", testIngestDedup},
		{"IngestResendsStayCompact", testResendsStayCompact},
		{"IngestResolution", testResolution},
		{"IngestUnknownCluster", testUnknownCluster},
		{"IngestAlertCap", testAlertCap},
		{"IngestAlertCapUnknownCluster", testAlertCapUnknown},
		{"IngestRejectsBadTimes", testBadTimes},
		{"ConcurrentIngest", testConcurrentIngest},
		{"IngestAfterAnotherReplicaCloses", testIngestAfterClose},
		{"Update", testUpdate},
		{"UpdateConcurrentWriters", testConcurrentUpdates},
		{"State", testState},
		{"StateUpdatesAreAtomic", testStateAtomic},
		{"Restart", testRestart},
		{"ID", testID},
		{"Fence", testFence},
		{"LargeRecord", testLargeRecord},
		{"Metrics", testMetrics},
		{"Ping", testPing},
		{"Page", testPage},
		{"Prune", testPrune},
		{"PruneConcurrent", testPruneConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, b) })
	}
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// Delivery is a configured cluster's ZMY_Quorum_Down alert.
func Delivery(cluster, fp, status string, startsAt time.Time) incident.Delivery {
	return incident.Delivery{
		Cluster: cluster, Alertname: "ZMY_Quorum_Down", Known: true,
		Alert: incident.AlertRecord{
			GroupKey: `{}:{alertname="ZMY_Quorum_Down"}`, Receiver: "zmy", Fingerprint: fp, Status: status,
			Labels:   map[string]string{"alertname": "ZMY_Quorum_Down", "cluster": cluster},
			StartsAt: startsAt, ExternalURL: "http://am1:9093",
		},
	}
}

func ingest(t *testing.T, s Store, ds ...incident.Delivery) []incident.IngestResult {
	t.Helper()
	res, err := s.Ingest(t.Context(), ds)
	require.NoError(t, err)
	return res
}

func get(t *testing.T, s Store, id string) *incident.Incident {
	t.Helper()
	inc, err := s.Get(t.Context(), id)
	require.NoError(t, err)
	return inc
}

func testIngestDedup(t *testing.T, b Backend) {
	ctx := t.Context()
	s := b.New(t).open(t, Setup{})
	require.Equal(t, []incident.IngestResult{{IncidentID: "inc-000001", Created: true, Open: true}},
		ingest(t, s, Delivery("east", "aaa", "firing", t0)))

	// A resend, another replica, another node's alert of the same group: all attach.
	require.Equal(t, []incident.IngestResult{{IncidentID: "inc-000001", Created: false, Open: true}, {IncidentID: "inc-000001", Created: false, Open: true}},
		ingest(t, s, Delivery("east", "aaa", "firing", t0), Delivery("east", "bbb", "firing", t0.Add(time.Second))))
	// Another cluster is another incident.
	require.Equal(t, []incident.IngestResult{{IncidentID: "inc-000002", Created: true, Open: true}}, ingest(t, s, Delivery("west", "ccc", "firing", t0)))

	inc := get(t, s, "inc-000001")
	require.Equal(t, incident.StepReceived, inc.Step)
	require.True(t, inc.Open())
	require.Len(t, inc.Alerts, 2)
	require.Equal(t, "aaa", inc.Alerts[0].Fingerprint)
	require.Equal(t, 2, inc.Alerts[0].Deliveries)
	require.Equal(t, 1, inc.Alerts[1].Deliveries)
	require.Equal(t, `{}:{alertname="ZMY_Quorum_Down"}`, inc.Alerts[0].GroupKey)
	require.Len(t, inc.Timeline, 1)

	n, err := s.OpenCount()
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.NoError(t, s.Ping(ctx))

	_, err = s.Get(ctx, "inc-000099")
	require.ErrorIs(t, err, incident.ErrNotFound)
	_, err = s.Get(ctx, "nope")
	require.ErrorIs(t, err, incident.ErrNotFound)

	// A delivery without a fingerprint gets its label set's.
	d := Delivery("east", "", "firing", t0)
	ingest(t, s, d)
	inc = get(t, s, "inc-000001")
	require.Len(t, inc.Alerts, 3)
	require.Regexp(t, `^[0-9a-f]{16}$`, inc.Alerts[2].Fingerprint)
}

func testResendsStayCompact(t *testing.T, b Backend) {
	s := b.New(t).open(t, Setup{})
	for range 100 {
		batch := make([]incident.Delivery, 100)
		for i := range batch {
			batch[i] = Delivery("east", "aaa", "firing", t0)
		}
		ingest(t, s, batch...)
	}
	inc := get(t, s, "inc-000001")
	require.Len(t, inc.Alerts, 1)
	require.Equal(t, 10000, inc.Alerts[0].Deliveries)
}

func testResolution(t *testing.T, b Backend) {
	s := b.New(t).open(t, Setup{})
	ingest(t, s, Delivery("east", "aaa", "firing", t0), Delivery("east", "bbb", "firing", t0))
	ingest(t, s, Delivery("east", "aaa", "resolved", t0))
	require.Nil(t, get(t, s, "inc-000001").ResolvedAt, "bbb still fires")

	ingest(t, s, Delivery("east", "bbb", "resolved", t0))
	inc := get(t, s, "inc-000001")
	require.NotNil(t, inc.ResolvedAt, "every alert resolved")
	require.Equal(t, "every alert of the incident is resolved", inc.Timeline[len(inc.Timeline)-1].Message)

	// A lagging replica resending the old firing notification does not undo the resolution.
	ingest(t, s, Delivery("east", "aaa", "firing", t0))
	require.NotNil(t, get(t, s, "inc-000001").ResolvedAt)

	// A genuinely new firing (later startsAt) does.
	ingest(t, s, Delivery("east", "aaa", "firing", t0.Add(time.Hour)))
	inc = get(t, s, "inc-000001")
	require.Nil(t, inc.ResolvedAt)
	require.True(t, inc.Open())
	require.Len(t, inc.Alerts, 5)
	require.Equal(t, "an alert of the incident is firing again", inc.Timeline[len(inc.Timeline)-1].Message)

	// A resolved alert for a group never seen firing is journaled on a closed incident.
	res := ingest(t, s, Delivery("north", "zzz", "resolved", t0))
	require.True(t, res[0].Created)
	require.False(t, res[0].Open)
	n := get(t, s, res[0].IncidentID)
	require.Equal(t, incident.OutcomeSelfHealed, n.Outcome)
	require.NotNil(t, n.ResolvedAt)

	// A resolution after the incident closed attaches to it, the latest of its group.
	_, err := s.Update(t.Context(), "inc-000001", func(inc *incident.Incident) error {
		inc.Step, inc.Outcome = incident.StepClosed, incident.OutcomeRecovered
		return nil
	})
	require.NoError(t, err)
	res = ingest(t, s, Delivery("east", "aaa", "resolved", t0.Add(time.Hour)))
	require.Equal(t, incident.IngestResult{IncidentID: "inc-000001"}, res[0])
	require.NotNil(t, get(t, s, "inc-000001").ResolvedAt)
}

func testUnknownCluster(t *testing.T, b Backend) {
	s := b.New(t).open(t, Setup{})
	d := Delivery("ghost", "aaa", "firing", t0)
	d.Known = false
	res1 := ingest(t, s, d)
	res2 := ingest(t, s, d)
	require.Equal(t, res1[0].IncidentID, res2[0].IncidentID, "resends reuse the closed unknown_cluster incident")
	require.False(t, res2[0].Created)
	require.False(t, res2[0].Open, "closed at once")

	inc := get(t, s, res1[0].IncidentID)
	require.Equal(t, incident.StepClosed, inc.Step)
	require.Equal(t, incident.OutcomeUnknownCluster, inc.Outcome)
	require.NotNil(t, inc.ClosedAt)
	require.Equal(t, 2, inc.Alerts[0].Deliveries)

	open, err := s.List(t.Context(), true)
	require.NoError(t, err)
	require.Empty(t, open)

	// Once the cluster is configured, its alerts open a real incident.
	d.Known = true
	res3 := ingest(t, s, d)
	require.True(t, res3[0].Created)
	require.NotEqual(t, res1[0].IncidentID, res3[0].IncidentID)
}

// capped is d with a cap of n alerts on its incident.
func capped(d incident.Delivery, n int) incident.Delivery {
	d.MaxAlerts = n
	return d
}

// testAlertCap: an incident keeps at most MaxAlerts distinct alerts; further new ones are
// counted, not stored, and the incident says so, once; resends of stored alerts and the
// resolutions of stored firing alerts are still recorded.
func testAlertCap(t *testing.T, b Backend) {
	open := b.New(t)
	s := open.open(t, Setup{})
	ingest(t, s, capped(Delivery("east", "a1", "firing", t0), 3), capped(Delivery("east", "a2", "firing", t0), 3))
	res := ingest(t, s, capped(Delivery("east", "a3", "firing", t0), 3), capped(Delivery("east", "a4", "firing", t0), 3),
		capped(Delivery("east", "a1", "firing", t0), 3))
	require.Equal(t, []incident.IngestResult{
		{IncidentID: "inc-000001", Open: true},
		{IncidentID: "inc-000001", Open: true, Dropped: true},
		{IncidentID: "inc-000001", Open: true},
	}, res)
	res = ingest(t, s, capped(Delivery("east", "a5", "firing", t0), 3))
	require.True(t, res[0].Dropped)
	res = ingest(t, s, capped(Delivery("east", "a4", "firing", t0), 3))
	require.True(t, res[0].Dropped, "a dropped alert sent again is dropped again")

	inc := get(t, s, "inc-000001")
	require.Len(t, inc.Alerts, 3)
	require.Equal(t, 3, inc.DroppedAlerts)
	require.Equal(t, 2, inc.Alerts[0].Deliveries, "a resend of a stored alert is counted on it")
	notes := 0
	for _, e := range inc.Timeline {
		if strings.Contains(e.Message, "the most it keeps") {
			notes++
			require.Contains(t, e.Message, "holds 3 alerts")
		}
	}
	require.Equal(t, 1, notes, "the cap is noted the first time only: %+v", inc.Timeline)

	// An update (the runbook's) does not lose the count, nor does a restart.
	_, err := s.Update(t.Context(), "inc-000001", func(inc *incident.Incident) error {
		inc.Step, inc.DroppedAlerts = incident.StepConfirming, 0
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	s = open.open(t, Setup{})
	require.Equal(t, 3, get(t, s, "inc-000001").DroppedAlerts)

	// Past the cap, the resolution of a stored alert is kept (the incident learns it resolved);
	// that of a dropped one is not.
	res = ingest(t, s, capped(Delivery("east", "a1", "resolved", t0), 3), capped(Delivery("east", "a2", "resolved", t0), 3),
		capped(Delivery("east", "a4", "resolved", t0), 3))
	require.Equal(t, []bool{false, false, true}, []bool{res[0].Dropped, res[1].Dropped, res[2].Dropped})
	require.Nil(t, get(t, s, "inc-000001").ResolvedAt, "a3 still fires")
	ingest(t, s, capped(Delivery("east", "a3", "resolved", t0), 3))
	inc = get(t, s, "inc-000001")
	require.NotNil(t, inc.ResolvedAt)
	require.Len(t, inc.Alerts, 6)
	require.Equal(t, 4, inc.DroppedAlerts)

	// The cap is the incident's: another group's incident has its own.
	res = ingest(t, s, capped(Delivery("west", "w1", "firing", t0), 3))
	require.Equal(t, incident.IngestResult{IncidentID: "inc-000002", Created: true, Open: true}, res[0])
	require.Zero(t, get(t, s, "inc-000002").DroppedAlerts)
}

// testAlertCapUnknown: an unknown cluster's incident keeps DefaultMaxAlertsUnknownCluster
// alerts unless told otherwise; a known cluster's, DefaultMaxAlerts.
func testAlertCapUnknown(t *testing.T, b Backend) {
	s := b.New(t).open(t, Setup{})
	n := incident.DefaultMaxAlertsUnknownCluster + 20
	ds := make([]incident.Delivery, n)
	for i := range ds {
		ds[i] = Delivery("ghost", fmt.Sprintf("fp%04d", i), "firing", t0)
		ds[i].Known = false
	}
	res := ingest(t, s, ds...)
	require.False(t, res[incident.DefaultMaxAlertsUnknownCluster-1].Dropped)
	require.True(t, res[incident.DefaultMaxAlertsUnknownCluster].Dropped)
	inc := get(t, s, res[0].IncidentID)
	require.Len(t, inc.Alerts, incident.DefaultMaxAlertsUnknownCluster)
	require.Equal(t, 20, inc.DroppedAlerts)

	for i := range ds {
		ds[i].Known = true
	}
	res = ingest(t, s, ds...)
	require.True(t, res[0].Created)
	inc = get(t, s, res[0].IncidentID)
	require.Len(t, inc.Alerts, n, "a known cluster's default cap is higher")
	require.Zero(t, inc.DroppedAlerts)
}

// A delivery that no store can keep fails its own call, with nothing written.
func testBadTimes(t *testing.T, b Backend) {
	s := b.New(t).open(t, Setup{})
	bad := Delivery("east", "aaa", "firing", time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC))
	_, err := s.Ingest(t.Context(), []incident.Delivery{Delivery("east", "bbb", "firing", t0), bad})
	require.ErrorContains(t, err, "outside years")
	all, err := s.List(t.Context(), false)
	require.NoError(t, err)
	require.Empty(t, all)
}

// testConcurrentIngest is the Alertmanager HA case: replicas and retries deliver the same groups
// at the same time; each group must get exactly one incident and every delivery is counted. A
// shared backend runs it over two stores, as two responder replicas.
func testConcurrentIngest(t *testing.T, b Backend) {
	stores := replicas(t, b)
	const senders, each, groups = 32, 20, 4
	concurrently(t, senders, each, func(sn, i int) error {
		c := fmt.Sprintf("c%d", (sn+i)%groups)
		_, err := stores[sn%len(stores)].Ingest(t.Context(), []incident.Delivery{Delivery(c, "fp-"+c, "firing", t0)})
		return err
	})
	for _, s := range stores {
		open, err := s.List(t.Context(), true)
		require.NoError(t, err)
		require.Len(t, open, groups)
		total := 0
		for _, inc := range open {
			require.Len(t, inc.Alerts, 1)
			total += inc.Alerts[0].Deliveries
		}
		require.Equal(t, senders*each, total)
	}
}

// testIngestAfterClose: a replica that ingested a group before keeps no stale view of it: once
// another replica closed the incident, the next firing alert opens a new one, and a resolution
// attaches to the closed one.
func testIngestAfterClose(t *testing.T, b Backend) {
	stores := replicas(t, b)
	a, other := stores[0], stores[len(stores)-1]
	ingest(t, a, Delivery("east", "aaa", "firing", t0))
	ingest(t, a, Delivery("east", "aaa", "firing", t0))
	_, err := other.Update(t.Context(), "inc-000001", func(inc *incident.Incident) error {
		inc.Step, inc.Outcome = incident.StepClosed, incident.OutcomeRecovered
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []incident.IngestResult{{IncidentID: "inc-000001"}, {IncidentID: "inc-000002", Created: true, Open: true}},
		ingest(t, a, Delivery("east", "aaa", "resolved", t0), Delivery("east", "aaa", "firing", t0.Add(time.Hour))))
	require.Equal(t, 3, get(t, other, "inc-000001").Alerts[0].Deliveries+get(t, other, "inc-000001").Alerts[1].Deliveries)
}

func testUpdate(t *testing.T, b Backend) {
	ctx := t.Context()
	clock := t0
	s := b.New(t).open(t, Setup{Now: func() time.Time { clock = clock.Add(time.Second); return clock }})
	ingest(t, s, Delivery("east", "aaa", "firing", t0))

	boom := errors.New("boom")
	_, err := s.Update(ctx, "inc-000001", func(inc *incident.Incident) error {
		inc.Step = incident.StepConfirming
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.Equal(t, incident.StepReceived, get(t, s, "inc-000001").Step, "an error from fn changes nothing")

	_, err = s.Update(ctx, "inc-000001", func(inc *incident.Incident) error { inc.ID = "inc-000002"; return nil })
	require.ErrorContains(t, err, "incident id changed")

	inc, err := s.Update(ctx, "inc-000001", func(inc *incident.Incident) error {
		require.Len(t, inc.Alerts, 1, "fn sees the alerts")
		inc.Step, inc.Outcome = incident.StepClosed, incident.OutcomeNotConfirmed
		inc.Alerts = nil // ignored
		return nil
	})
	require.NoError(t, err)
	require.NotNil(t, inc.ClosedAt)
	require.True(t, inc.UpdatedAt.After(inc.OpenedAt), "UpdatedAt stamped")
	inc = get(t, s, "inc-000001")
	require.Len(t, inc.Alerts, 1)
	require.Equal(t, incident.OutcomeNotConfirmed, inc.Outcome)
	n, err := s.OpenCount()
	require.NoError(t, err)
	require.Zero(t, n)

	_, err = s.Update(ctx, "inc-000001", func(inc *incident.Incident) error { inc.Step = incident.StepConfirming; return nil })
	require.ErrorIs(t, err, incident.ErrConflict)
	_, err = s.Update(ctx, "inc-000042", func(*incident.Incident) error { return nil })
	require.ErrorIs(t, err, incident.ErrNotFound)

	// Closed: the next firing opens a second incident.
	require.Equal(t, incident.IngestResult{IncidentID: "inc-000002", Created: true, Open: true}, ingest(t, s, Delivery("east", "aaa", "firing", t0))[0])
	all, err := s.List(ctx, false)
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Equal(t, "inc-000002", all[0].ID, "newest first")
	require.Equal(t, "inc-000001", all[1].ID)
}

// testConcurrentUpdates: writers (on two stores when the backend is shared) append to the same
// incident at once; none of their updates is lost, and each fn sees the record as it is.
func testConcurrentUpdates(t *testing.T, b Backend) {
	stores := replicas(t, b)
	ingest(t, stores[0], Delivery("east", "aaa", "firing", t0))
	const writers, each = 8, 10
	concurrently(t, writers, each, func(w, i int) error {
		_, err := stores[w%len(stores)].Update(t.Context(), "inc-000001", func(inc *incident.Incident) error {
			inc.Commands = append(inc.Commands, incident.Command{Node: fmt.Sprintf("w%d", w), Args: []string{strconv.Itoa(i)}})
			inc.Recontained = len(inc.Commands) // a field derived from the record as fn sees it
			return nil
		})
		return err
	})
	inc := get(t, stores[len(stores)-1], "inc-000001")
	require.Len(t, inc.Commands, writers*each)
	require.Equal(t, writers*each, inc.Recontained)
	seen := map[string]bool{}
	for _, c := range inc.Commands {
		seen[c.Node+"/"+c.Args[0]] = true
	}
	require.Len(t, seen, writers*each, "every update kept once")
}

func testState(t *testing.T, b Backend) {
	ctx := t.Context()
	s := b.New(t).open(t, Setup{})
	got, err := s.GetState(ctx, "cluster/east")
	require.NoError(t, err)
	require.Nil(t, got)
	require.NoError(t, s.UpdateState(ctx, "cluster/east", func(cur []byte) ([]byte, error) {
		require.Nil(t, cur)
		return []byte(`{"paused":true}`), nil
	}))
	got, err = s.GetState(ctx, "cluster/east")
	require.NoError(t, err)
	require.JSONEq(t, `{"paused":true}`, string(got))

	// An error from fn leaves the document as it was; nil deletes it.
	require.ErrorIs(t, s.UpdateState(ctx, "cluster/east", func([]byte) ([]byte, error) { return nil, incident.ErrConflict }), incident.ErrConflict)
	got, err = s.GetState(ctx, "cluster/east")
	require.NoError(t, err)
	require.JSONEq(t, `{"paused":true}`, string(got))
	require.NoError(t, s.UpdateState(ctx, "cluster/east", func([]byte) ([]byte, error) { return nil, nil }))
	got, err = s.GetState(ctx, "cluster/east")
	require.NoError(t, err)
	require.Nil(t, got)
}

// Concurrent read-modify-writes of one document (on two stores when shared) lose nothing: each
// sees the previous answer.
func testStateAtomic(t *testing.T, b Backend) {
	stores := replicas(t, b)
	concurrently(t, 20, 1, func(w, _ int) error {
		return stores[w%len(stores)].UpdateState(t.Context(), "counter", func(cur []byte) ([]byte, error) {
			n := 0
			if cur != nil {
				n, _ = strconv.Atoi(string(cur))
			}
			return []byte(strconv.Itoa(n + 1)), nil
		})
	})
	got, err := stores[0].GetState(t.Context(), "counter")
	require.NoError(t, err)
	require.Equal(t, "20", string(got))
}

func testRestart(t *testing.T, b Backend) {
	ctx := t.Context()
	open := b.New(t)
	s := open(t, Setup{})
	for i := range 10 {
		ingest(t, s, Delivery(fmt.Sprintf("c%d", i), "fp", "firing", t0))
	}
	_, err := s.Update(ctx, "inc-000003", func(inc *incident.Incident) error {
		inc.Step, inc.Outcome = incident.StepClosed, incident.OutcomeRecovered
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, s.UpdateState(ctx, "k", func([]byte) ([]byte, error) { return []byte("v"), nil }))
	require.NoError(t, s.Close())

	s = open.open(t, Setup{})
	all, err := s.List(ctx, false)
	require.NoError(t, err)
	require.Len(t, all, 10)
	open2, err := s.List(ctx, true)
	require.NoError(t, err)
	require.Len(t, open2, 9)
	require.Equal(t, incident.OutcomeRecovered, get(t, s, "inc-000003").Outcome)
	v, err := s.GetState(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "v", string(v))

	// Dedup survives the restart, and IDs continue from the stored sequence.
	require.Equal(t, []incident.IngestResult{{IncidentID: "inc-000001", Created: false, Open: true}, {IncidentID: "inc-000011", Created: true, Open: true}},
		ingest(t, s, Delivery("c0", "fp", "firing", t0), Delivery("c2", "fp", "firing", t0)))
}

// A store keeps its identity across reopenings (and replicas of a shared one have the same);
// another storage has another one.
func testID(t *testing.T, b Backend) {
	open := b.New(t)
	s := open(t, Setup{})
	id := s.ID()
	require.Regexp(t, `^j[0-9a-f]{12}$`, id)
	require.NoError(t, s.Close())
	again := open.open(t, Setup{})
	require.Equal(t, id, again.ID())
	if b.Shared {
		require.Equal(t, id, open.open(t, Setup{}).ID(), "replicas share the identity")
	}
	require.NotEqual(t, id, b.New(t).open(t, Setup{}).ID())
}

// testFence: a write under a fence commits while the fence's key is the one the fence names;
// once the key is deleted, or recreated (a new leader), it is refused with ErrFenced and
// changes nothing. Ingest is never fenced. A store without fencing ignores fences.
func testFence(t *testing.T, b Backend) {
	s := b.New(t).open(t, Setup{})
	ingest(t, s, Delivery("east", "aaa", "firing", t0))
	step := func(ctx context.Context, to incident.Step) error {
		_, err := s.Update(ctx, "inc-000001", func(inc *incident.Incident) error { inc.Step = to; return nil })
		return err
	}
	state := func(ctx context.Context, v string) error {
		return s.UpdateState(ctx, "breaker/east", func([]byte) ([]byte, error) { return []byte(v), nil })
	}
	if b.Campaign == nil {
		ctx := incident.WithFence(t.Context(), incident.Fence{Key: "/nowhere", Revision: 42})
		require.NoError(t, step(ctx, incident.StepConfirming), "fences are ignored")
		require.NoError(t, state(ctx, "x"))
		return
	}
	const key = "/election/east/leader"
	f1 := b.Campaign(t, key)
	led := incident.WithFence(t.Context(), f1)
	require.NoError(t, step(led, incident.StepConfirming))
	require.NoError(t, state(led, "closed"))

	b.Resign(t, key)
	require.ErrorIs(t, step(led, incident.StepContaining), incident.ErrFenced)
	require.ErrorIs(t, state(led, "open"), incident.ErrFenced)
	f2 := b.Campaign(t, key)
	require.NotEqual(t, f1.Revision, f2.Revision)
	require.ErrorIs(t, step(led, incident.StepContaining), incident.ErrFenced, "a recreated key is another leadership")
	require.Equal(t, incident.StepConfirming, get(t, s, "inc-000001").Step, "a refused write changes nothing")
	got, err := s.GetState(t.Context(), "breaker/east")
	require.NoError(t, err)
	require.Equal(t, "closed", string(got))

	_, err = s.Ingest(led, []incident.Delivery{Delivery("east", "bbb", "firing", t0)})
	require.NoError(t, err, "ingest is never fenced")
	require.NoError(t, step(incident.WithFence(t.Context(), f2), incident.StepContaining), "the new leader writes")
	require.NoError(t, step(t.Context(), incident.StepSnapshotting), "an unfenced write")
}

// testLargeRecord: a 200-node verdict (about 1 MB of evidence, much of it incompressible) and
// thousands of commands round-trip exactly, through updates that add to them.
func testLargeRecord(t *testing.T, b Backend) {
	ctx := t.Context()
	s := b.New(t).open(t, Setup{})
	ingest(t, s, Delivery("big", "aaa", "firing", t0))
	v := LargeVerdict(200)
	ev, err := json.Marshal(v.Evidence)
	require.NoError(t, err)
	require.Greater(t, len(ev), 1<<20, "a 200-node verdict's evidence is over 1 MB of JSON")

	want, err := s.Update(ctx, "inc-000001", func(inc *incident.Incident) error {
		inc.Step, inc.Verdict = incident.StepContaining, v
		inc.Commands = LargeCommands(3000)
		return nil
	})
	require.NoError(t, err)
	SameRecord(t, want, get(t, s, "inc-000001"))

	for i := range 3 {
		want, err = s.Update(ctx, "inc-000001", func(inc *incident.Incident) error {
			inc.Commands = append(inc.Commands, LargeCommands(1)...)
			inc.Timeline = append(inc.Timeline, incident.Event{At: t0, Step: inc.Step, Message: fmt.Sprintf("step %d", i)})
			return nil
		})
		require.NoError(t, err)
	}
	SameRecord(t, want, get(t, s, "inc-000001"))
	// A new verdict replaces the evidence.
	want, err = s.Update(ctx, "inc-000001", func(inc *incident.Incident) error {
		inc.Verdict = LargeVerdict(199)
		return nil
	})
	require.NoError(t, err)
	SameRecord(t, want, get(t, s, "inc-000001"))
	ingest(t, s, Delivery("big", "bbb", "firing", t0))
	all, err := s.List(ctx, true)
	require.NoError(t, err)
	require.Len(t, all, 1)
	want.Alerts = all[0].Alerts
	SameRecord(t, want, all[0])
}

// SameRecord compares two incidents as their JSON, which is what the API serves.
func SameRecord(t *testing.T, want, got *incident.Incident) {
	t.Helper()
	w, err := json.Marshal(want)
	require.NoError(t, err)
	g, err := json.Marshal(got)
	require.NoError(t, err)
	require.Equal(t, len(w), len(g), "record size")
	require.JSONEq(t, string(w), string(g))
}

// LargeVerdict is a verdict with the evidence of a nodes-node cluster as the prober records it:
// every probe on every node, with excerpts of what was read (random, so that it does not
// compress: the worst case for the store's limits).
func LargeVerdict(nodes int) *incident.Verdict {
	v := &incident.Verdict{Kind: incident.VerdictConfirmed, Reason: "split", At: t0,
		Conditions: map[incident.Condition]bool{incident.CondControl: true, incident.CondData: true, incident.CondNetwork: true}}
	for n := range nodes {
		for _, p := range []string{"control", "raft_state", "data", "tcp", "netcheck", "http", "clock"} {
			v.Evidence = append(v.Evidence, incident.Evidence{Node: fmt.Sprintf("n%03d", n), Probe: p, OK: true,
				Value: "QUORUM_LOST", Raw: noise(n*7+len(p), 760), Duration: time.Millisecond, Supports: []incident.Condition{incident.CondControl}})
		}
	}
	return v
}

// LargeCommands are n zmyctl commands with their output.
func LargeCommands(n int) []incident.Command {
	out := make([]incident.Command, n)
	for i := range out {
		out[i] = incident.Command{Node: fmt.Sprintf("n%03d", i%200), Args: []string{"raft", "suspend", "--force"},
			Step: incident.StepContaining, Started: t0, Duration: time.Millisecond, Output: noise(i, 300)}
	}
	return out
}

// noise is n printable pseudo-random bytes, the same for the same seed.
func noise(seed, n int) string {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte('!' + x%94)
	}
	return string(b)
}

func testMetrics(t *testing.T, b Backend) {
	reg := prometheus.NewRegistry()
	s := b.New(t).open(t, Setup{Registerer: reg})
	ingest(t, s, Delivery("east", "aaa", "firing", t0))
	_, err := s.Update(t.Context(), "inc-000001", func(*incident.Incident) error { return nil })
	require.NoError(t, err)
	get(t, s, "inc-000001")
	require.Equal(t, 7, testutil.CollectAndCount(reg, "zmy_responder_storage_request_duration_seconds"), "one series per op, from the start")
	require.Equal(t, 1, testutil.CollectAndCount(reg, "zmy_responder_journal_write_duration_seconds"))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	counts := map[string]uint64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "zmy_responder_journal_write_duration_seconds":
				counts["write"] = m.GetHistogram().GetSampleCount()
			case "zmy_responder_storage_request_duration_seconds":
				counts[m.GetLabel()[0].GetValue()] = m.GetHistogram().GetSampleCount()
			}
		}
	}
	require.Equal(t, map[string]uint64{"write": 2, "ingest": 1, "update": 1, "get": 1, "list": 0, "get_state": 0, "update_state": 0, "prune": 0}, counts)
}

// testPing: a store answers Ping while it is open, and not once closed (readiness).
func testPing(t *testing.T, b Backend) {
	s := b.New(t).open(t, Setup{})
	require.NoError(t, s.Ping(t.Context()))
	require.NoError(t, s.Close())
	require.Error(t, s.Ping(t.Context()))
}

// testPage: summaries newest first, filtered by state and cluster, one bounded page at a time,
// the cursor continuing where the last page ended.
func testPage(t *testing.T, b Backend) {
	ctx := t.Context()
	s := b.New(t).open(t, Setup{})
	for i := range 5 {
		cluster := []string{"east", "west"}[i%2]
		ingest(t, s, Delivery(cluster, fmt.Sprintf("fp%d", i), "firing", t0))
		if i < 4 { // all but the newest closed, so that the next one opens a new incident
			_, err := s.Update(ctx, incident.FormatID(uint64(i+1)), func(inc *incident.Incident) error {
				inc.Step, inc.Outcome = incident.StepClosed, incident.OutcomeNotConfirmed
				inc.Verdict = &incident.Verdict{Kind: incident.VerdictNotConfirmed}
				return nil
			})
			require.NoError(t, err)
		}
	}
	p, err := s.Page(ctx, incident.PageQuery{Limit: 2})
	require.NoError(t, err)
	require.Equal(t, []string{"inc-000005", "inc-000004"}, summaryIDs(p))
	require.Equal(t, "inc-000004", p.Next)
	require.Equal(t, incident.VerdictNotConfirmed, p.Incidents[1].VerdictKind)
	p, err = s.Page(ctx, incident.PageQuery{Limit: 2, Cursor: p.Next})
	require.NoError(t, err)
	require.Equal(t, []string{"inc-000003", "inc-000002"}, summaryIDs(p))
	p, err = s.Page(ctx, incident.PageQuery{Cursor: p.Next})
	require.NoError(t, err)
	require.Equal(t, []string{"inc-000001"}, summaryIDs(p))
	require.Empty(t, p.Next)

	p, err = s.Page(ctx, incident.PageQuery{State: incident.StateOpen})
	require.NoError(t, err)
	require.Equal(t, []string{"inc-000005"}, summaryIDs(p))
	p, err = s.Page(ctx, incident.PageQuery{State: incident.StateClosed, Cluster: "west"})
	require.NoError(t, err)
	require.Equal(t, []string{"inc-000004", "inc-000002"}, summaryIDs(p))
	_, err = s.Page(ctx, incident.PageQuery{Limit: incident.MaxPageLimit + 1})
	require.ErrorIs(t, err, incident.ErrInvalidQuery)
	_, err = s.Page(ctx, incident.PageQuery{Cursor: "nonsense"})
	require.ErrorIs(t, err, incident.ErrInvalidQuery)
}

func summaryIDs(p *incident.Page) []string {
	out := make([]string, len(p.Incidents))
	for i, s := range p.Incidents {
		out[i] = s.ID
	}
	return out
}

// clock is a settable Now for stores under test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// testPrune: Prune deletes the incidents closed before the cutoff, with their alerts, and only
// those: an open incident is kept however old, a recently closed one is kept; the group of a
// pruned incident starts afresh; the counts follow.
func testPrune(t *testing.T, b Backend) {
	ctx := t.Context()
	clk := &clock{t: t0}
	open := b.New(t)
	s := open.open(t, Setup{Now: clk.Now})
	closeInc := func(id string) {
		t.Helper()
		_, err := s.Update(ctx, id, func(inc *incident.Incident) error {
			inc.Step, inc.Outcome = incident.StepClosed, incident.OutcomeRecovered
			return nil
		})
		require.NoError(t, err)
	}

	// Old: 70 closed incidents (more than one batch), one of them over its alert cap; one
	// unknown cluster's; one open since then.
	var old []incident.Delivery
	for i := range 70 {
		old = append(old, Delivery(fmt.Sprintf("old%02d", i), "aaa", "firing", t0))
	}
	ghost := Delivery("ghost", "ggg", "firing", t0)
	ghost.Known = false
	res := ingest(t, s, append(old, ghost, Delivery("still-open", "ooo", "firing", t0))...)
	ingest(t, s, capped(Delivery("old00", "bbb", "firing", t0), 1), capped(Delivery("old00", "ccc", "firing", t0), 1))
	clk.Set(t0.Add(time.Hour))
	for _, r := range res[:70] {
		closeInc(r.IncidentID)
	}
	ghostID, openID := res[70].IncidentID, res[71].IncidentID

	// Recent: closed 40 days later.
	clk.Set(t0.Add(40 * 24 * time.Hour))
	recent := ingest(t, s, Delivery("recent", "rrr", "firing", clk.Now()))[0].IncidentID
	closeInc(recent)
	openN, total, err := s.IncidentCounts(ctx)
	require.NoError(t, err)
	require.Equal(t, []int{1, 73}, []int{openN, total})

	n, err := s.Prune(ctx, clk.Now().Add(-30*24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, 71, n, "70 closed and the unknown cluster's")
	for _, r := range res[:71] {
		_, err := s.Get(ctx, r.IncidentID)
		require.ErrorIs(t, err, incident.ErrNotFound, r.IncidentID)
	}
	require.True(t, get(t, s, openID).Open(), "an open incident is never pruned")
	require.Equal(t, incident.StepClosed, get(t, s, recent).Step, "closed within the retention: kept")
	all, err := s.List(ctx, false)
	require.NoError(t, err)
	require.Len(t, all, 2)
	page, err := s.Page(ctx, incident.PageQuery{})
	require.NoError(t, err)
	require.Equal(t, []string{recent, openID}, summaryIDs(page))
	openN, total, err = s.IncidentCounts(ctx)
	require.NoError(t, err)
	require.Equal(t, []int{1, 2}, []int{openN, total})

	n, err = s.Prune(ctx, clk.Now().Add(-30*24*time.Hour))
	require.NoError(t, err)
	require.Zero(t, n, "nothing more to prune")

	// The pruned incidents' groups start afresh: a late resolution and a new firing alert
	// open new incidents, the old alerts gone with their incident.
	res = ingest(t, s, Delivery("old00", "aaa", "resolved", t0), Delivery("old01", "aaa", "firing", t0), ghost)
	for _, r := range res {
		require.True(t, r.Created, "%+v", r)
		inc := get(t, s, r.IncidentID)
		require.Len(t, inc.Alerts, 1)
		require.Equal(t, 1, inc.Alerts[0].Deliveries)
		require.Zero(t, inc.DroppedAlerts)
	}
	require.NotEqual(t, ghostID, res[2].IncidentID)

	// Once the open one closes and ages, it goes too; the counts survive a restart.
	closeInc(openID)
	require.NoError(t, s.Close())
	clk.Set(t0.Add(80 * 24 * time.Hour))
	s = open.open(t, Setup{Now: clk.Now})
	n, err = s.Prune(ctx, clk.Now().Add(-30*24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, 4, n, "the formerly open one, the recent one, and the two closed at once 40 days after t0")
	openN, total, err = s.IncidentCounts(ctx)
	require.NoError(t, err)
	require.Equal(t, []int{1, 1}, []int{openN, total})
	all, err = s.List(ctx, false)
	require.NoError(t, err)
	require.Len(t, all, 1)
	require.Equal(t, res[1].IncidentID, all[0].ID)
}

// testPruneConcurrent: two prunes at once (two replicas of a shared store) delete each incident
// once, and the count of what is stored stays exact; what one leaves, the next run deletes.
func testPruneConcurrent(t *testing.T, b Backend) {
	ctx := t.Context()
	stores := replicas(t, b)
	var ds []incident.Delivery
	for i := range 100 {
		d := Delivery(fmt.Sprintf("c%03d", i), "aaa", "firing", t0)
		d.Known = false // closed at once
		ds = append(ds, d)
	}
	ingest(t, stores[0], ds...)
	cutoff := time.Now().Add(time.Hour)
	var mu sync.Mutex
	deleted := 0
	concurrently(t, 2, 1, func(w, _ int) error {
		n, err := stores[w%len(stores)].Prune(ctx, cutoff)
		mu.Lock()
		deleted += n
		mu.Unlock()
		return err
	})
	n, err := stores[0].Prune(ctx, cutoff)
	require.NoError(t, err)
	require.Equal(t, 100, deleted+n, "each incident deleted once")
	for _, s := range stores {
		open, total, err := s.IncidentCounts(ctx)
		require.NoError(t, err)
		require.Equal(t, []int{0, 0}, []int{open, total})
		all, err := s.List(ctx, false)
		require.NoError(t, err)
		require.Empty(t, all)
	}
}
