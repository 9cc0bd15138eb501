package receiver

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zmyorg/zmy-responder/internal/promreg"
)

// DefaultRetention is --storage.retention's default: closed incidents are kept 30 days.
const DefaultRetention = 720 * time.Hour

// pruneEvery is how often the journal is pruned, besides once at start.
const pruneEvery = 10 * time.Minute

// pruner is what retention needs of the incident store; both backends implement it.
type pruner interface {
	// Prune deletes the closed incidents closed before cutoff, in short batches.
	Prune(ctx context.Context, cutoff time.Time) (int, error)
	// IncidentCounts is how many incidents are open, and stored in all.
	IncidentCounts(ctx context.Context) (open, total int, err error)
}

// retention prunes closed incidents older than keep, once at start and then at every tick.
type retention struct {
	p      pruner
	keep   time.Duration
	now    func() time.Time
	logger *slog.Logger
	pruned prometheus.Counter
}

// newRetention registers the journal's size metrics and returns the pruner's loop; keep 0 keeps
// every incident (the metrics are still exported).
func newRetention(reg prometheus.Registerer, p pruner, keep time.Duration, logger *slog.Logger) (*retention, error) {
	r := &retention{p: p, keep: keep, now: time.Now, logger: logger,
		pruned: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "zmy_responder", Name: "journal_pruned_total",
			Help: "Closed incidents deleted from the journal because they closed longer than --storage.retention ago.",
		})}
	if reg != nil {
		var err error
		if r.pruned, err = promreg.Register(reg, r.pruned); err != nil {
			return nil, err
		}
		if err := reg.Register(&journalIncidents{p: p}); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// run prunes now, then at every tick, until ctx ends. Failures are logged; the next run retries.
func (r *retention) run(ctx context.Context, tick <-chan time.Time) {
	if r.keep <= 0 {
		return
	}
	for {
		r.once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
	}
}

// once prunes every incident closed more than keep ago.
func (r *retention) once(ctx context.Context) {
	cutoff := r.now().Add(-r.keep)
	start := time.Now()
	n, err := r.p.Prune(ctx, cutoff)
	r.pruned.Add(float64(n))
	switch {
	case err != nil && ctx.Err() == nil:
		r.logger.Warn("pruning the journal failed; the next run retries", "err", err, "pruned", n,
			"closed_before", cutoff.UTC().Format(time.RFC3339))
	case n > 0:
		r.logger.Info("journal pruned", "incidents", n, "closed_before", cutoff.UTC().Format(time.RFC3339),
			"duration", time.Since(start).Round(time.Millisecond).String())
	}
}

// journalIncidents is journal_incidents{state}, read from the store at scrape time without
// reading any record.
type journalIncidents struct{ p pruner }

var descJournalIncidents = prometheus.NewDesc("zmy_responder_journal_incidents",
	"Incidents stored in the journal, by state (open, closed); closed ones are pruned after --storage.retention.",
	[]string{"state"}, nil)

func (j *journalIncidents) Describe(ch chan<- *prometheus.Desc) { ch <- descJournalIncidents }

func (j *journalIncidents) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), openScrapeTimeout)
	defer cancel()
	open, total, err := j.p.IncidentCounts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descJournalIncidents, fmt.Errorf("count incidents: %w", err))
		return
	}
	ch <- prometheus.MustNewConstMetric(descJournalIncidents, prometheus.GaugeValue, float64(open), "open")
	ch <- prometheus.MustNewConstMetric(descJournalIncidents, prometheus.GaugeValue, float64(max(total-open, 0)), "closed")
}
