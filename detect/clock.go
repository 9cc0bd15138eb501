package detect

import (
	"context"
	"fmt"
	"time"

	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// ProbeClockOffset scrapes the node's /metrics for its wall clock and measures its offset
// against the midpoint of the request (node clock − midpoint), which corrects for half the
// round trip; the reading carries that half as its uncertainty. The fuse judges the readings.
func ProbeClockOffset(ctx context.Context, t Target) Result {
	if t.Node.MetricsURL == "" {
		return Result{Status: StatusError, Reason: "node has no metrics_url configured"}
	}
	m, err := zmy.Scrape(ctx, t.HTTP, t.Node.MetricsURL, t.MaxBytes)
	if err != nil {
		return Result{Status: StatusError, Err: err, Reason: fmt.Sprintf("node %s: %v", t.Node.ID, err)}
	}
	offset, half, ok := m.ClockOffset()
	if !ok {
		return Result{Status: StatusError, Raw: m.Raw, Reason: "no " + zmy.MetricClock + " in /metrics"}
	}
	rd := &ClockReading{Node: t.Node.ID, At: m.Start.Add(half), Offset: offset, Uncertainty: half}
	return Result{Status: StatusOK, Data: rd,
		Value: fmt.Sprintf("offset=%s ±%s", signed(offset), half.Round(time.Microsecond))}
}
