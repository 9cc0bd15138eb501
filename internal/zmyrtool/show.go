package zmyrtool

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// sopConditions are the three checks a split-brain is confirmed by, in the SOP's order.
var sopConditions = []struct {
	name  incident.Condition
	title string
}{
	{incident.CondControl, "control plane (QUORUM_LOST or several leaders)"},
	{incident.CondData, "data plane (a shard's applied index differs)"},
	{incident.CondNetwork, "network (peers unreachable, no firewall rule)"},
}

// ShowIncident prints one incident: where it stands, the verdict with the SOP's three
// conditions and their evidence per node, what the gate waits for, the timeline, the commands
// per node and the silences. Extended adds command output, the plan and the alerts.
func (t *Tool) ShowIncident(ctx context.Context, id string) error {
	inc, err := t.Client.Incident(ctx, id)
	if err != nil {
		return err
	}
	if t.Format == JSON {
		return t.json(inc)
	}
	out := t.Out
	fmt.Fprintf(out, "%s  %s on cluster %s\n", inc.ID, inc.Alertname, inc.Cluster)
	state := string(inc.Step)
	if inc.Outcome != "" {
		state += ", outcome " + string(inc.Outcome)
	}
	fmt.Fprintf(out, "Step:      %s\n", state)
	if d := inc.StepDeadline; d != nil && inc.Open() {
		fmt.Fprintf(out, "Deadline:  %s (%s)\n", stamp(*d), until(t.now(), *d))
	}
	fmt.Fprintf(out, "Opened:    %s (%s)\n", stamp(inc.OpenedAt), ago(t.now(), inc.OpenedAt))
	if inc.ClosedAt != nil {
		fmt.Fprintf(out, "Closed:    %s\n", stamp(*inc.ClosedAt))
	}
	if inc.Reason != "" {
		fmt.Fprintf(out, "Reason:    %s\n", inc.Reason)
	}
	if note, at := inc.GateNote(); note != "" && inc.Open() {
		fmt.Fprintf(out, "Gate waits for: %s (as of %s)\n", note, clock(at))
	}
	for _, a := range inc.Approvals {
		fmt.Fprintf(out, "Approved:  by %s at %s: %s\n", a.By, stamp(a.At), a.Reason)
	}
	if a := inc.Abort; a != nil {
		fmt.Fprintf(out, "Aborted:   by %s at %s: %s\n", a.By, stamp(a.At), a.Reason)
	}
	if r := inc.Recovery; r != nil {
		fmt.Fprintf(out, "Recovery:  majority %s, leader %s, term %d, %d entries discarded\n",
			strings.Join(r.Majority, ","), r.Leader, r.Term, r.Discarded)
	}
	if v := inc.Verdict; v != nil {
		fmt.Fprintln(out)
		t.printVerdict(v)
	}
	if t.Format == Extended && len(inc.Plan) > 0 {
		fmt.Fprintln(out, "\nPlan:")
		for _, s := range inc.Plan {
			fmt.Fprintf(out, "  %s\n", s)
		}
	}

	fmt.Fprintln(out, "\nTimeline:")
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, ev := range inc.Timeline {
		fmt.Fprintf(w, "  %s\t%s\t%s\n", clock(ev.At), ev.Step, ev.Message)
	}
	w.Flush()

	fmt.Fprintln(out, "\nCommands:")
	if len(inc.Commands) == 0 {
		fmt.Fprintln(out, "  none")
	}
	for _, node := range inc.CommandNodes() {
		fmt.Fprintf(out, "  %s:\n", node)
		w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		for _, c := range inc.Commands {
			if c.Node != node {
				continue
			}
			fmt.Fprintf(w, "    %s\t%s\t%s\texit %d\t%s\t%s\n", clock(c.Started), c.Step, strings.Join(c.Args, " "), c.Exit, human(c.Duration), c.Error)
			if t.Format == Extended && c.Output != "" {
				w.Flush()
				fmt.Fprintln(out, indent(c.Output, "      | "))
			}
		}
		w.Flush()
	}

	fmt.Fprintln(out, "\nSilences:")
	if len(inc.Silences) == 0 {
		fmt.Fprintln(out, "  none")
	}
	am := ""
	if len(inc.Alerts) > 0 {
		am = strings.TrimRight(inc.Alerts[0].ExternalURL, "/")
	}
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, s := range inc.Silences {
		link := ""
		if am != "" && s.ID != "" {
			link = am + "/#/silences/" + s.ID
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\tends %s\t%s\t%s\n", clock(s.At), s.Action, dash(s.ID), stamp(s.EndsAt), link, s.Error)
	}
	w.Flush()

	if t.Format == Extended {
		fmt.Fprintln(out, "\nAlerts:")
		w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		for _, a := range inc.Alerts {
			fmt.Fprintf(w, "  %s\t%s\tstarts %s\t%d deliveries\tfrom %s\n", a.Status, labels(a.Labels), stamp(a.StartsAt), a.Deliveries, a.ExternalURL)
		}
		w.Flush()
	}
	return nil
}

// printVerdict prints the verdict and, for each SOP condition, whether it holds and the
// evidence per node that decided it; extended output adds the other evidence.
func (t *Tool) printVerdict(v *incident.Verdict) {
	out := t.Out
	fmt.Fprintf(out, "Verdict:   %s: %s\n", v.Kind, v.Reason)
	fmt.Fprintf(out, "           probed %s in %s; partition score %.2f", stamp(v.At), human(v.Duration), v.PartitionScore)
	if v.RootCause != "" {
		fmt.Fprintf(out, "; root cause %s (%s)", v.RootCause, v.SOP)
	}
	if v.ClockFuse {
		fmt.Fprint(out, "; clock fuse tripped")
	}
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, c := range sopConditions {
		mark := "no "
		if v.Conditions[c.name] {
			mark = "YES"
		}
		fmt.Fprintf(w, "  [%s] %s\n", mark, c.title) // no tab: each condition aligns its own rows
		for _, e := range v.Evidence {
			if slices.Contains(e.Supports, c.name) {
				fmt.Fprintf(w, "        %s\t%s\t%s\n", dash(e.Node), e.Probe, reading(e))
			}
		}
	}
	if t.Format == Extended {
		fmt.Fprintf(w, "  other evidence\n")
		for _, e := range v.Evidence {
			if !slices.ContainsFunc(e.Supports, func(c incident.Condition) bool {
				return c == incident.CondControl || c == incident.CondData || c == incident.CondNetwork
			}) {
				fmt.Fprintf(w, "        %s\t%s\t%s\n", dash(e.Node), e.Probe, reading(e))
			}
		}
	}
	w.Flush()
}

// reading is one piece of evidence in a line.
func reading(e incident.Evidence) string {
	switch {
	case e.Skipped:
		return "skipped (node breaker open)"
	case e.Error != "" && e.Value != "":
		return e.Value + "; " + e.Error
	case e.Error != "":
		return "no answer: " + e.Error
	}
	return e.Value
}

func labels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%q", k, m[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
