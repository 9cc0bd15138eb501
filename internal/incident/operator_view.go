package incident

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// What the operator's tools (the console and zmyrtool) read off an incident.

// GateNote is what the recovery gate waited for at its last reading, and when: from the
// structured Gate ("approval, network: …; partition score 0.75"), else from the timeline line
// the engine wrote at awaiting_recovery ("gate closed: …"); "" before the first reading.
func (inc *Incident) GateNote() (string, time.Time) {
	if g := inc.Gate; g != nil {
		if len(g.WaitingFor) == 0 {
			return "nothing: the gate is open", g.CheckedAt
		}
		note := strings.Join(g.WaitingFor, ", ")
		if g.Reason != "" {
			note += ": " + g.Reason
		}
		note += fmt.Sprintf("; partition score %.2f", g.PartitionScore)
		if len(g.UnhealthyEtcd) > 0 {
			note += "; etcd unhealthy: " + strings.Join(g.UnhealthyEtcd, ", ")
		}
		return note, g.CheckedAt
	}
	for i := len(inc.Timeline) - 1; i >= 0; i-- {
		ev := inc.Timeline[i]
		if ev.Step != StepAwaitingRecovery {
			continue
		}
		if rest, ok := strings.CutPrefix(ev.Message, "gate closed: "); ok {
			return rest, ev.At
		}
		if strings.HasPrefix(ev.Message, "gate open") {
			return "nothing: " + ev.Message, ev.At
		}
	}
	return "", time.Time{}
}

// CommandNodes lists the nodes commands ran on: in the verdict's order (the configuration's),
// then any other in the order it first ran something.
func (inc *Incident) CommandNodes() []string {
	ran := func(node string) bool {
		return slices.ContainsFunc(inc.Commands, func(c Command) bool { return c.Node == node })
	}
	var nodes []string
	if inc.Verdict != nil {
		for _, e := range inc.Verdict.Evidence {
			if e.Node != "" && !slices.Contains(nodes, e.Node) && ran(e.Node) {
				nodes = append(nodes, e.Node)
			}
		}
	}
	for _, c := range inc.Commands {
		if !slices.Contains(nodes, c.Node) {
			nodes = append(nodes, c.Node)
		}
	}
	return nodes
}

// HumanDuration prints a duration to a reader's precision: 850ms, 12.4s, 3m05s, 2h10m.
func HumanDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + HumanDuration(-d)
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}
