// Package dashboards ships zmy-responder's Grafana dashboards (the *.json files beside this one:
// "ZMY split-brain responder" and "ZMY cluster health") and reads their PromQL, so that tests can
// prove every metric a panel names exists in the responder's or a ZMY node's exposition.
package dashboards

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
)

// FS holds the dashboards as Grafana imports them.
//
//go:embed *.json
var FS embed.FS

// Dashboard is the part of a Grafana dashboard this package reads.
type Dashboard struct {
	File          string `json:"-"`
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Editable      bool   `json:"editable"`
	Panels        []Panel
	Templating    struct {
		List []Variable `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name       string      `json:"name"`
			Expr       string      `json:"expr"`
			Datasource *Datasource `json:"datasource"`
		} `json:"list"`
	} `json:"annotations"`
}

// Panel is a panel or a row (whose collapsed panels are in Panels).
type Panel struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Description string      `json:"description"`
	Datasource  *Datasource `json:"datasource"`
	GridPos     struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets     []Target `json:"targets"`
	Panels      []Panel  `json:"panels"`
	FieldConfig struct {
		Defaults struct {
			Unit     string            `json:"unit"`
			Mappings []json.RawMessage `json:"mappings"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

// Target is one query of a panel.
type Target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Datasource *Datasource `json:"datasource"`
	Instant    bool        `json:"instant"`
}

// Datasource references a Grafana data source.
type Datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Variable is a template variable. Query is a string in old dashboards and an object with a
// "query" field in new ones.
type Variable struct {
	Name       string          `json:"name"`
	Label      string          `json:"label"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *Datasource     `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
	Refresh    int             `json:"refresh"`
}

// QueryString returns the variable's query whichever form it is stored in.
func (v Variable) QueryString() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(v.Query, &o) == nil {
		return o.Query
	}
	return ""
}

// Load parses every dashboard in FS.
func Load() ([]Dashboard, error) {
	names, err := fs.Glob(FS, "*.json")
	if err != nil {
		return nil, fmt.Errorf("list dashboards: %w", err)
	}
	sort.Strings(names)
	out := make([]Dashboard, 0, len(names))
	for _, name := range names {
		b, err := FS.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read dashboard %s: %w", name, err)
		}
		var d Dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("parse dashboard %s: %w", name, err)
		}
		d.File = name
		out = append(out, d)
	}
	return out, nil
}

// AllPanels returns the dashboard's panels, rows' collapsed panels included, rows excluded.
func (d *Dashboard) AllPanels() []Panel {
	var out []Panel
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			out = append(out, p)
		}
	}
	walk(d.Panels)
	return out
}

// Query is one PromQL expression of a dashboard and where it is.
type Query struct {
	Where string // "dashboard / panel" or "dashboard / annotation" or "dashboard / $variable"
	Expr  string // with Grafana's variables substituted: valid PromQL
}

// Substitute replaces the Grafana variables used in these dashboards with values that make the
// expression valid PromQL selecting cluster.
func Substitute(expr, cluster string) string {
	return strings.NewReplacer(
		"${__rate_interval}", "1m", "$__rate_interval", "1m",
		"${__interval}", "15s", "$__interval", "15s",
		"${__range}", "1h", "$__range", "1h",
		"${cluster}", cluster, "$cluster", cluster,
		// Every job and instance: the variables' "All" value.
		"${job}", ".+", "$job", ".+",
		"${instance}", ".+", "$instance", ".+",
	).Replace(expr)
}

// labelValues matches Grafana's label_values(metric, label) and label_values(label).
var labelValues = regexp.MustCompile(`^\s*label_values\(\s*(?:(.+?)\s*,\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)

// Queries returns every PromQL expression of the dashboard: panel targets, annotation queries
// and the selectors of label_values() variables.
func (d *Dashboard) Queries(cluster string) []Query {
	var out []Query
	for _, p := range d.AllPanels() {
		for _, t := range p.Targets {
			if t.Expr != "" {
				out = append(out, Query{d.Title + " / " + p.Title, Substitute(t.Expr, cluster)})
			}
		}
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			out = append(out, Query{d.Title + " / annotation " + a.Name, Substitute(a.Expr, cluster)})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		if m := labelValues.FindStringSubmatch(v.QueryString()); m != nil && m[1] != "" {
			out = append(out, Query{d.Title + " / $" + v.Name, Substitute(m[1], cluster)})
		}
	}
	return out
}
