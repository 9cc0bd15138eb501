package detect

import (
	"fmt"
	"maps"
	"time"

	"github.com/zmyorg/zmy-responder/internal/config"
)

// ClockReading is one node's clock offset, measured from a scrape: the node's clock minus the
// midpoint of the responder's request, which corrects for half the round trip. The true offset
// lies within ±Uncertainty (half the round trip) of Offset.
type ClockReading struct {
	Node        string
	At          time.Time // responder time at the midpoint of the scrape
	Offset      time.Duration
	Uncertainty time.Duration
}

// nodeClock is the fuse's memory of one node.
type nodeClock struct {
	Last     ClockReading
	Breaches int    // consecutive breaching readings
	Reason   string // why the last reading breached; "" when clean
}

// FuseState is a cluster's clock fuse. It is a value: observe returns a new one, so a verdict
// can hold the state it was decided under.
type FuseState struct {
	Nodes map[string]nodeClock
}

// Tripped reports whether some node breached on `breaches` consecutive readings. A clean
// reading resets that node's count, so the fuse resets once readings are clean again.
func (s FuseState) Tripped(cfg config.ClockFuseConfig) bool {
	return len(s.TrippedNodes(cfg)) > 0
}

// TrippedNodes lists the nodes whose consecutive breaches reached the bound, with the reason.
func (s FuseState) TrippedNodes(cfg config.ClockFuseConfig) map[string]string {
	out := map[string]string{}
	for id, n := range s.Nodes {
		if n.Breaches >= max(cfg.Breaches, 1) {
			out[id] = n.Reason
		}
	}
	return out
}

// observe folds one round of readings into the fuse. A reading breaches when |offset| exceeds
// max_offset, or when the offset moved faster than max_drift_per_min since the node's previous
// reading, away from true time, by more than the two readings' uncertainty can explain (so
// scrape jitter is not drift).
func (s FuseState) observe(readings []ClockReading, cfg config.ClockFuseConfig) FuseState {
	next := FuseState{Nodes: maps.Clone(s.Nodes)}
	if next.Nodes == nil {
		next.Nodes = map[string]nodeClock{}
	}
	for _, r := range readings {
		prev, seen := next.Nodes[r.Node]
		reason := breach(prev.Last, seen, r, cfg)
		n := nodeClock{Last: r, Reason: reason}
		if reason != "" {
			n.Breaches = prev.Breaches + 1
		}
		next.Nodes[r.Node] = n
	}
	return next
}

// forget drops nodes no longer configured, so a removed node cannot hold the fuse tripped.
func (s FuseState) forget(keep func(node string) bool) FuseState {
	next := FuseState{Nodes: maps.Clone(s.Nodes)}
	maps.DeleteFunc(next.Nodes, func(id string, _ nodeClock) bool { return !keep(id) })
	return next
}

func breach(prev ClockReading, seen bool, r ClockReading, cfg config.ClockFuseConfig) string {
	maxOffset := time.Duration(cfg.MaxOffset)
	if abs(r.Offset) > maxOffset {
		return fmt.Sprintf("offset %s exceeds %s", signed(r.Offset), maxOffset)
	}
	if !seen || !r.At.After(prev.At) {
		return ""
	}
	if abs(r.Offset) < abs(prev.Offset) {
		// Moving toward true time is a correction (an NTP step, a fixed skew), not an
		// untrustworthy clock; counting it would keep the fuse tripped after the fix.
		return ""
	}
	moved := abs(r.Offset-prev.Offset) - r.Uncertainty - prev.Uncertainty
	if moved <= 0 {
		return ""
	}
	perMin := time.Duration(float64(moved) * float64(time.Minute) / float64(r.At.Sub(prev.At)))
	if perMin > time.Duration(cfg.MaxDrift) {
		return fmt.Sprintf("offset drifting %s/min exceeds %s/min", perMin.Round(time.Millisecond), time.Duration(cfg.MaxDrift))
	}
	return ""
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// signed formats an offset with its sign, e.g. "+801ms".
func signed(d time.Duration) string {
	d = d.Round(100 * time.Microsecond)
	if d >= 0 {
		return "+" + d.String()
	}
	return d.String()
}
