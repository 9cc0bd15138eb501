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
	m, failed := scrapeNode(ctx, t)
	if failed != nil {
		return *failed
	}
	offset, half, ok := m.ClockOffset()
	if !ok {
		return Result{Status: StatusError, Raw: m.Raw, Reason: "no " + zmy.MetricClock + " in /metrics"}
	}
	rd := &ClockReading{Node: t.Node.ID, At: m.Start.Add(half), Offset: offset, Uncertainty: half}
	return Result{Status: StatusOK, Data: rd,
		Value: fmt.Sprintf("offset=%s ±%s", signed(offset), half.Round(time.Microsecond))}
}
