package detect

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

// evidence turns the results into the verdict's record, in config node order then probe order
// (cluster-wide probes last), each saying which condition it supports.
func evidence(results []Result, fuse FuseState, p decideParams, stale map[string][]string) []incident.Evidence {
	nodePos := make(map[string]int, len(p.Nodes))
	for i, n := range p.Nodes {
		nodePos[n] = i
	}
	pos := func(r Result) int {
		if i, ok := nodePos[r.Node]; ok {
			return i
		}
		return len(p.Nodes)
	}
	sorted := slices.Clone(results)
	slices.SortStableFunc(sorted, func(a, b Result) int {
		return cmp.Or(cmp.Compare(pos(a), pos(b)),
			cmp.Compare(slices.Index(ProbeNames, a.Probe), slices.Index(ProbeNames, b.Probe)))
	})
	out := make([]incident.Evidence, 0, len(sorted))
	for _, r := range sorted {
		e := incident.Evidence{
			Node: r.Node, Probe: r.Probe, OK: r.Answered(), Value: r.Value, Raw: r.Raw,
			Duration: r.Duration, Skipped: r.Status == StatusSkipped || r.Status == StatusBudgetExhausted,
			Supports: []incident.Condition{conditionOf(r.Probe)},
		}
		if r.Status != StatusOK {
			e.Error = r.Reason
		}
		switch r.Probe {
		case ProbeData:
			if peers := stale[r.Node]; len(peers) > 0 {
				// The scrape also carries heartbeats, which are network evidence.
				e.Supports = append(e.Supports, incident.CondNetwork)
				e.Value += "; stale heartbeats to " + list(peers)
			}
		case ProbeClock:
			if nc, ok := fuse.Nodes[r.Node]; ok && r.Answered() && nc.Breaches > 0 {
				e.Value += fmt.Sprintf("; breach %d/%d: %s", nc.Breaches, max(p.Fuse.Breaches, 1), nc.Reason)
			}
		}
		out = append(out, e)
	}
	return out
}

// describeFuse names the nodes holding the fuse tripped and why.
func describeFuse(fuse FuseState, cfg config.ClockFuseConfig) string {
	tripped := fuse.TrippedNodes(cfg)
	parts := make([]string, 0, len(tripped))
	for _, n := range sortedKeys(tripped) {
		parts = append(parts, fmt.Sprintf("%s: %s on %d consecutive readings", n, tripped[n], fuse.Nodes[n].Breaches))
	}
	return list(parts)
}

// maxListed bounds lists in reasons, so a 200-node verdict stays one readable sentence.
const maxListed = 8

// list joins items, eliding past maxListed.
func list(items []string) string {
	if len(items) <= maxListed {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:maxListed], ", ") + fmt.Sprintf(" and %d more", len(items)-maxListed)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sortedTrue(m map[string]bool) []string {
	var out []string
	for _, k := range sortedKeys(m) {
		if m[k] {
			out = append(out, k)
		}
	}
	return out
}
