// Package zmyrtool is what bin/zmyrtool's commands do once cmd/zmyrtool has parsed the flags:
// ask the daemon through internal/apiclient and print the answer as simple or extended text,
// or as the API's JSON.
package zmyrtool

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/zmyorg/zmy-responder/internal/apiclient"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

// Format is how answers are printed: --output.
type Format string

const (
	Simple   Format = "simple"
	Extended Format = "extended"
	JSON     Format = "json"
)

// Formats are the accepted --output values.
var Formats = []string{string(Simple), string(Extended), string(JSON)}

// IncidentActions are the decisions `zmyrtool incidents <action> ID` posts; each is
// POST /api/v1/incidents/{id}/<action>.
var IncidentActions = []struct {
	Name, Help     string
	ReasonOptional bool // --reason is a comment the human may leave out
}{
	{"approve", "Approve the recovery step (arbitrate, recover, resume) of a confirmed incident.", false},
	{"abort", "Stop the runbook of an open incident now; the answer says what state the nodes were left in.", false},
	{"ack", "Acknowledge an incident: record that you are on it (the runbook goes on; nothing is approved). --reason is an optional comment.", true},
	{"retry", "Re-evaluate a closed incident whose alert still fires, as a new incident linked to it (for anti_flap: overrides the anti-flap period).", false},
}

// Tool runs commands against one daemon.
type Tool struct {
	Client *apiclient.Client
	Out    io.Writer
	Format Format
	Now    func() time.Time // default time.Now
}

func (t *Tool) now() time.Time {
	if t.Now == nil {
		return time.Now()
	}
	return t.Now()
}

func (t *Tool) json(v any) error {
	enc := json.NewEncoder(t.Out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ListIncidents prints up to max incidents matching o, newest first, following the API's pages.
func (t *Tool) ListIncidents(ctx context.Context, o apiclient.ListOptions, max int) error {
	var all []incident.Summary
	for len(all) < max {
		o.Limit = min(100, max-len(all))
		p, err := t.Client.Incidents(ctx, o)
		if err != nil {
			return err
		}
		all = append(all, p.Incidents...)
		if o.Cursor = p.NextCursor; o.Cursor == "" {
			break
		}
	}
	if t.Format == JSON {
		if all == nil {
			all = []incident.Summary{}
		}
		return t.json(all)
	}
	w := tabwriter.NewWriter(t.Out, 0, 0, 2, ' ', 0)
	if t.Format == Extended {
		fmt.Fprintln(w, "ID\tCLUSTER\tALERTNAME\tSTEP\tVERDICT\tOUTCOME\tOPENED\tUPDATED\tREASON")
	} else {
		fmt.Fprintln(w, "ID\tCLUSTER\tSTEP\tVERDICT\tOUTCOME\tOPENED")
	}
	for _, s := range all {
		if t.Format == Extended {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Cluster, s.Alertname, s.Step, dash(string(s.VerdictKind)),
				dash(string(s.Outcome)), stamp(s.OpenedAt), stamp(s.UpdatedAt), dash(s.Reason))
		} else {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Cluster, s.Step, dash(string(s.VerdictKind)),
				dash(string(s.Outcome)), ago(t.now(), s.OpenedAt))
		}
	}
	return w.Flush()
}

// Decide posts a decision on the incident and prints the daemon's short answer.
func (t *Tool) Decide(ctx context.Context, id, action string, d apiclient.Decision) error {
	r, err := t.Client.Decide(ctx, id, action, d)
	if err != nil {
		return err
	}
	if t.Format == JSON {
		return t.json(r)
	}
	state := string(r.Step)
	if r.Outcome != "" {
		state += " (" + string(r.Outcome) + ")"
	}
	_, err = fmt.Fprintf(t.Out, "%s %s: %s is at %s\n%s\n", action, r.ID, r.Cluster, state, r.Message)
	return err
}

// ListClusters prints every configured cluster.
func (t *Tool) ListClusters(ctx context.Context) error {
	cs, err := t.Client.Clusters(ctx)
	if err != nil {
		return err
	}
	if t.Format == JSON {
		return t.json(cs)
	}
	w := tabwriter.NewWriter(t.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tKILL SWITCH\tBREAKER\tAPPROVAL\tOPEN INCIDENT\tLAST INCIDENT")
	for _, c := range cs {
		ks := "running"
		if c.Paused != nil {
			ks = "paused"
			if t.Format == Extended {
				ks = fmt.Sprintf("paused by %s at %s: %s", c.Paused.By, stamp(c.Paused.At), c.Paused.Reason)
			}
		}
		if c.DryRun {
			ks += " (dry run)"
		}
		approval := "required"
		if !c.RequireApproval {
			approval = "not required"
		}
		open := dash(c.OpenIncident)
		if c.OpenIncident != "" {
			open += " at " + string(c.CurrentStep)
		}
		last := dash(c.LastIncident)
		if c.LastOutcome != "" {
			last += " " + string(c.LastOutcome)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, ks, c.Breaker, approval, open, last)
	}
	return w.Flush()
}

// SetPaused pauses or unpauses the cluster and prints the answer.
func (t *Tool) SetPaused(ctx context.Context, cluster string, pause bool, d apiclient.Decision) error {
	r, err := t.Client.SetPaused(ctx, cluster, pause, d)
	if err != nil {
		return err
	}
	if t.Format == JSON {
		return t.json(r)
	}
	state := "running (kill switch cleared)"
	if r.Paused {
		state = "paused (no new remediation starts)"
	}
	_, err = fmt.Fprintf(t.Out, "%s: %s\n%s\n", r.Cluster, state, r.Message)
	return err
}

// Plan prints the dry run of the cluster: the verdict now and the steps the runbook would run.
func (t *Tool) Plan(ctx context.Context, cluster string) error {
	p, err := t.Client.Plan(ctx, cluster)
	if err != nil {
		return err
	}
	if t.Format == JSON {
		return t.json(p)
	}
	fmt.Fprintf(t.Out, "Dry run of cluster %s (nothing was changed).\n", p.Cluster)
	if p.Error != "" {
		fmt.Fprintf(t.Out, "Probes failed: %s\n", p.Error)
	}
	if p.Verdict != nil {
		t.printVerdict(p.Verdict)
	}
	if p.Guard != "" {
		fmt.Fprintf(t.Out, "\nA remediation would stop at the %s guard now: %s\n", p.Guard, p.Reason)
	}
	fmt.Fprintln(t.Out, "\nSteps the runbook runs once a split-brain is confirmed:")
	for _, s := range p.Steps {
		fmt.Fprintf(t.Out, "  %s\n", s)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func clock(t time.Time) string { return t.UTC().Format("15:04:05.000") }

func ago(now, t time.Time) string { return human(now.Sub(t)) + " ago" }

func until(now, t time.Time) string {
	if d := t.Sub(now); d > 0 {
		return "in " + human(d)
	}
	return "passed " + ago(now, t)
}

var human = incident.HumanDuration

// indent prefixes every line of s.
func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}
