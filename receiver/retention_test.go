package receiver

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// fakePruner records the cutoffs it is asked to prune before.
type fakePruner struct {
	mu      sync.Mutex
	cutoffs []time.Time
	calls   chan struct{}
}

func (f *fakePruner) Prune(_ context.Context, cutoff time.Time) (int, error) {
	f.mu.Lock()
	f.cutoffs = append(f.cutoffs, cutoff)
	f.mu.Unlock()
	f.calls <- struct{}{}
	return 2, nil
}

func (f *fakePruner) IncidentCounts(context.Context) (int, int, error) { return 3, 10, nil }

// The pruner runs once at start, then at every tick, with the cutoff retention before now.
func TestRetentionLoop(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := &fakePruner{calls: make(chan struct{})}
	r, err := newRetention(reg, p, 48*time.Hour, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	now := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	tick := make(chan time.Time)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.run(ctx, tick); close(done) }()

	<-p.calls // at start, without a tick
	now = now.Add(time.Hour)
	tick <- now
	<-p.calls
	cancel()
	<-done
	require.Equal(t, []time.Time{time.Date(2026, 1, 8, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 8, 1, 0, 0, 0, time.UTC)}, p.cutoffs)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP zmy_responder_journal_incidents Incidents stored in the journal, by state (open, closed); closed ones are pruned after --storage.retention.
# TYPE zmy_responder_journal_incidents gauge
zmy_responder_journal_incidents{state="closed"} 7
zmy_responder_journal_incidents{state="open"} 3
# HELP zmy_responder_journal_pruned_total Closed incidents deleted from the journal because they closed longer than --storage.retention ago.
# TYPE zmy_responder_journal_pruned_total counter
zmy_responder_journal_pruned_total 4
`), "zmy_responder_journal_incidents", "zmy_responder_journal_pruned_total"))

	// Retention 0 keeps everything: the loop returns without pruning.
	r, err = newRetention(nil, p, 0, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	r.run(t.Context(), nil)
	require.Len(t, p.cutoffs, 2)
}

// The daemon prunes at start: an incident closed 40 days ago goes with --storage.retention=720h;
// one closed yesterday and one open for 40 days stay.
func TestRunPrunesAtStart(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	at := time.Now().Add(-40 * 24 * time.Hour)
	j, err := incident.Open(filepath.Join(dir, incident.FileName), incident.Options{Now: func() time.Time { return at }})
	require.NoError(t, err)
	d := func(cluster string) incident.Delivery {
		return incident.Delivery{Cluster: cluster, Alertname: "ZMY_Quorum_Down", Known: true, Alert: incident.AlertRecord{
			Fingerprint: "f-" + cluster, Status: "firing", StartsAt: at, Labels: map[string]string{"cluster": cluster}}}
	}
	closeInc := func(id string) {
		_, err := j.Update(ctx, id, func(inc *incident.Incident) error {
			inc.Step, inc.Outcome = incident.StepClosed, incident.OutcomeRecovered
			return nil
		})
		require.NoError(t, err)
	}
	_, err = j.Ingest(ctx, []incident.Delivery{d("old"), d("recent"), d("open")})
	require.NoError(t, err)
	closeInc("inc-000001")
	at = time.Now().Add(-24 * time.Hour)
	closeInc("inc-000002")
	require.NoError(t, j.Close())

	r := startRun(t, Options{ConfigFile: configFile(t, testClusters), StoragePath: dir, Retention: 720 * time.Hour})
	waitUntil(t, 30*time.Second, "a prune at start", func() bool {
		return metricValue(t, r.reg, "zmy_responder_journal_pruned_total") >= 1
	})
	code, _ := r.env().do(t, "GET", "/api/v1/incidents/inc-000001", nil)
	require.Equal(t, 404, code, "closed 40 days ago: pruned")
	for _, id := range []string{"inc-000002", "inc-000003"} {
		code, body := r.env().do(t, "GET", "/api/v1/incidents/"+id, nil)
		require.Equal(t, 200, code, "%s: %s", id, body)
	}
	require.NoError(t, testutil.GatherAndCompare(r.reg, strings.NewReader(`
# HELP zmy_responder_journal_incidents Incidents stored in the journal, by state (open, closed); closed ones are pruned after --storage.retention.
# TYPE zmy_responder_journal_incidents gauge
zmy_responder_journal_incidents{state="closed"} 1
zmy_responder_journal_incidents{state="open"} 1
`), "zmy_responder_journal_incidents"))
}
