package detect

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// ProbeDataPlane scrapes the node's /metrics: per-shard last applied index (the SOP's data
// check), plus heartbeats, sync lag and the node clock, which the threshold and network
// judgement use.
func ProbeDataPlane(ctx context.Context, t Target) Result {
	m, failed := scrapeNode(ctx, t)
	if failed != nil {
		return *failed
	}
	r := Result{Status: StatusOK, Raw: m.Raw, Data: m, Value: describeShards(m.Shards)}
	if len(m.Shards) == 0 {
		r.Status, r.Reason = StatusFail, "no shard applied index in /metrics"
	}
	return r
}

// scrapeNode reads the node's /metrics for the data-plane and clock probes, through the round's
// shared scrape when there is one; on failure it returns the probe's error result.
func scrapeNode(ctx context.Context, t Target) (*zmy.NodeMetrics, *Result) {
	if t.Node.MetricsURL == "" {
		return nil, &Result{Status: StatusError, Reason: "node has no metrics_url configured"}
	}
	fetch := t.Metrics
	if fetch == nil {
		fetch = func(ctx context.Context) (*zmy.NodeMetrics, error) {
			return zmy.Scrape(ctx, t.HTTP, t.Node.MetricsURL, t.MaxBytes)
		}
	}
	m, err := fetch(ctx)
	if err != nil {
		return nil, &Result{Status: StatusError, Err: err, Reason: fmt.Sprintf("node %s: %v", t.Node.ID, err)}
	}
	return m, nil
}

// describeShards is "shards 1=120 2=98 …" in shard order.
func describeShards(shards map[string]uint64) string {
	ids := sortedKeys(shards)
	slices.SortFunc(ids, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b) // numeric ids sort numerically
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, len(ids))
	for _, id := range ids {
		parts = append(parts, fmt.Sprintf("%s=%d", id, shards[id]))
	}
	return "shards " + strings.Join(parts, " ")
}

// sharedScrape returns a Target.Metrics that scrapes the node once, with fetch, on its first
// call; every call waits for that one scrape or for its own ctx, whichever ends first.
func sharedScrape(fetch func() (*zmy.NodeMetrics, error)) func(ctx context.Context) (*zmy.NodeMetrics, error) {
	var (
		once sync.Once
		done = make(chan struct{})
		m    *zmy.NodeMetrics
		err  error
	)
	return func(ctx context.Context) (*zmy.NodeMetrics, error) {
		once.Do(func() {
			go func() {
				defer close(done)
				m, err = fetch()
			}()
		})
		select {
		case <-done:
			return m, err
		case <-ctx.Done():
			return nil, fmt.Errorf("scrape: %w", context.Cause(ctx))
		}
	}
}
