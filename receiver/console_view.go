package receiver

import (
	"fmt"
	"html/template"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/remediate"
)

// What the console's pages show, built from the journal and the engine; the templates only
// format.

type indexView struct {
	Open, Recent  []incident.Summary
	Next          string // cursor of older incidents
	Older         bool   // this is not the first page
	Clusters      []remediate.ClusterStatus
	ClustersError string
}

type clustersView struct {
	Clusters []remediate.ClusterStatus
	Error    string
	Forms    []actionForm // pause for a running cluster, unpause for a paused one
}

type incidentView struct {
	Inc      *incident.Incident
	Deadline time.Time // the current step's deadline; zero when closed
	// Gate is what the recovery gate waited for at its last reading, and when.
	Gate       string
	GateAt     time.Time
	Conditions []conditionView
	Context    []nodeEvidence // evidence for no SOP condition: clock, liveness
	Commands   []nodeCommands
	Silences   []silenceView
	Grafana    string // dashboard link, "" without web.grafana_url
	Actions    []actionForm
}

// conditionView is one of the SOP's three conditions with the evidence that decided it.
type conditionView struct {
	Name  incident.Condition
	Title string
	Held  bool
	Nodes []nodeEvidence
}

type nodeEvidence struct {
	Node  string // "" for a cluster-wide probe
	Items []incident.Evidence
}

type nodeCommands struct {
	Node     string
	Commands []incident.Command
}

type silenceView struct {
	incident.Silence
	URL string // the silence in the sending Alertmanager's UI
}

// actionForm is one decision form: who and why, posted with the page's CSRF token.
type actionForm struct {
	Action       string // where it posts
	ID, Name     string
	Title, Label string
	Help         string
	By, Reason   string // prefilled
	CSRF         string // set by the template (withCSRF)
}

// newForm is the form of decision name posting to action; typed, a refused form's input for the
// same action, is shown again, else by is the authenticated user.
func newForm(action, id, name, title, label, help, user string, typed *formInput) actionForm {
	f := actionForm{Action: action, ID: id, Name: name, Title: title, Label: label, Help: help, By: user}
	if typed != nil && typed.Action == action {
		f.By, f.Reason = typed.By, typed.Reason
	}
	return f
}

// sopConditions are the three checks a split-brain is confirmed by, in the SOP's order.
var sopConditions = []struct {
	name  incident.Condition
	title string
}{
	{incident.CondControl, "Control plane: QUORUM_LOST, or more than one leader"},
	{incident.CondData, "Data plane: a shard's applied index differs across nodes"},
	{incident.CondNetwork, "Network: peers unreachable with no firewall rule explaining it"},
}

// grafanaDashboard is the uid of dashboards/zmy-responder.json, which has a cluster variable.
const grafanaDashboard = "zmy-responder"

func (s *Server) incidentView(c echo.Context, inc *incident.Incident, typed *formInput) incidentView {
	cfg := s.Config()
	v := incidentView{Inc: inc, Commands: commandsByNode(inc)}
	if inc.Open() && inc.StepDeadline != nil {
		v.Deadline = *inc.StepDeadline
	}
	v.Gate, v.GateAt = inc.GateNote()
	if inc.Verdict != nil {
		for _, sc := range sopConditions {
			v.Conditions = append(v.Conditions, conditionView{Name: sc.name, Title: sc.title,
				Held: inc.Verdict.Conditions[sc.name], Nodes: evidenceByNode(inc.Verdict.Evidence, sc.name)})
		}
		v.Context = evidenceByNode(inc.Verdict.Evidence, "")
	}
	am := cfg.Alertmanager.URL
	if len(inc.Alerts) > 0 && inc.Alerts[0].ExternalURL != "" {
		am = inc.Alerts[0].ExternalURL // the sending Alertmanager's own UI
	}
	for _, sil := range inc.Silences {
		sv := silenceView{Silence: sil}
		if am != "" && sil.ID != "" {
			sv.URL = strings.TrimRight(am, "/") + "/#/silences/" + url.PathEscape(sil.ID)
		}
		v.Silences = append(v.Silences, sv)
	}
	if g := cfg.Web.GrafanaURL; g != "" {
		from := inc.OpenedAt.Add(-15 * time.Minute).UnixMilli()
		to := "now"
		if inc.ClosedAt != nil {
			to = fmt.Sprint(inc.ClosedAt.Add(15 * time.Minute).UnixMilli())
		}
		v.Grafana = fmt.Sprintf("%s/d/%s/?var-cluster=%s&from=%d&to=%s", strings.TrimRight(g, "/"),
			grafanaDashboard, url.QueryEscape(inc.Cluster), from, to)
	}
	user := authUser(c.Request())
	for _, a := range incidentActions {
		if a.offered(inc) {
			v.Actions = append(v.Actions, newForm("/incidents/"+url.PathEscape(inc.ID)+"/"+a.Name,
				"form-"+a.Name, a.Name, a.Label, a.Label, a.Help, user, typed))
		}
	}
	return v
}

// clustersView is the clusters page, with a refused form's input shown again.
func (s *Server) clustersView(c echo.Context, typed *formInput) clustersView {
	clusters, err := s.clusterViews(c)
	v := clustersView{Clusters: clusters, Error: err}
	user := authUser(c.Request())
	for _, cs := range clusters {
		for _, a := range clusterActions {
			if a.Pauses == (cs.Paused == nil) {
				v.Forms = append(v.Forms, newForm("/clusters/"+url.PathEscape(cs.Name)+"/"+a.Name, "form-"+a.Name+"-"+cs.Name,
					a.Name, a.Label+" "+cs.Name, a.Label, a.Help, user, typed))
			}
		}
	}
	return v
}

// evidenceByNode keeps the evidence supporting cond ("" for none of the SOP's three), grouped
// by node in the verdict's order.
func evidenceByNode(ev []incident.Evidence, cond incident.Condition) []nodeEvidence {
	var out []nodeEvidence
	for _, e := range ev {
		sop := slices.ContainsFunc(e.Supports, func(c incident.Condition) bool {
			return c == incident.CondControl || c == incident.CondData || c == incident.CondNetwork
		})
		if (cond == "" && sop) || (cond != "" && !slices.Contains(e.Supports, cond)) {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Node == e.Node {
			out[n-1].Items = append(out[n-1].Items, e)
			continue
		}
		out = append(out, nodeEvidence{Node: e.Node, Items: []incident.Evidence{e}})
	}
	return out
}

// commandsByNode groups the commands by node, in Incident.CommandNodes' order.
func commandsByNode(inc *incident.Incident) []nodeCommands {
	var out []nodeCommands
	for _, node := range inc.CommandNodes() {
		nc := nodeCommands{Node: node}
		for _, c := range inc.Commands {
			if c.Node == node {
				nc.Commands = append(nc.Commands, c)
			}
		}
		out = append(out, nc)
	}
	return out
}

// clusterViews is the engine's cluster list, or why there is none.
func (s *Server) clusterViews(c echo.Context) ([]remediate.ClusterStatus, string) {
	rb := s.getRunbook()
	if rb == nil {
		return nil, "the runbook engine is not running"
	}
	cs, err := rb.Clusters(c.Request().Context())
	if err != nil {
		return nil, err.Error()
	}
	return cs, ""
}

// viewFuncs format values for the templates.
var viewFuncs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"clock": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("15:04:05.000")
	},
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"ago": func(now, t time.Time) string {
		return incident.HumanDuration(now.Sub(t)) + " ago"
	},
	"until": func(now, t time.Time) string {
		if d := t.Sub(now); d > 0 {
			return "in " + incident.HumanDuration(d)
		}
		return "passed " + incident.HumanDuration(now.Sub(t)) + " ago"
	},
	"dur": func(d time.Duration) string { return incident.HumanDuration(d) },
	"deref": func(t *time.Time) time.Time {
		if t == nil {
			return time.Time{}
		}
		return *t
	},
	"args":     func(a []string) string { return strings.Join(a, " ") },
	"withCSRF": func(f actionForm, token string) actionForm { f.CSRF = token; return f },
	"rows":     func(now time.Time, items []incident.Summary) summaryRows { return summaryRows{now, items} },
	"score":    func(f float64) string { return fmt.Sprintf("%.2f", f) },
	"stepClass": func(step incident.Step, outcome incident.Outcome) string {
		switch {
		case outcome == incident.OutcomeRecovered || outcome == incident.OutcomeSelfHealed:
			return "good"
		case outcome == incident.OutcomeNotConfirmed || outcome == incident.OutcomeDryRun || outcome == incident.OutcomeUnknownCluster:
			return "neutral"
		case outcome != "":
			return "bad"
		case step == incident.StepAwaitingRecovery:
			return "waiting"
		}
		return "active"
	},
}

// summaryRows is a list of incidents with the time they are rendered at.
type summaryRows struct {
	Now   time.Time
	Items []incident.Summary
}
