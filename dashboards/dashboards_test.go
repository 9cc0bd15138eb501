package dashboards

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/testenv"
	"github.com/zmyorg/zmy-responder/rules"
)

// testCluster is the cluster name the expressions are instantiated with; the live test starts
// a simulated cluster of that name.
const testCluster = "t"

// prometheusOwn are series Prometheus itself creates: scrape health and alert state.
var prometheusOwn = map[string]bool{"up": true, "ALERTS": true, "ALERTS_FOR_STATE": true}

func loadDashboards(t *testing.T) []Dashboard {
	t.Helper()
	ds, err := Load()
	require.NoError(t, err)
	require.Len(t, ds, 2, "the responder and the cluster health dashboards")
	return ds
}

func TestDashboardsAreWellFormed(t *testing.T) {
	uids := map[string]bool{}
	for _, d := range loadDashboards(t) {
		require.NotEmpty(t, d.UID, d.File)
		require.False(t, uids[d.UID], "%s: uid %q used twice", d.File, d.UID)
		uids[d.UID] = true
		require.GreaterOrEqual(t, d.SchemaVersion, 36, d.File)

		vars := map[string]Variable{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v
		}
		ds, ok := vars["datasource"]
		require.True(t, ok, "%s: no datasource variable", d.File)
		require.Equal(t, "datasource", ds.Type, d.File)
		require.Equal(t, "prometheus", ds.QueryString(), d.File)
		cl, ok := vars["cluster"]
		require.True(t, ok, "%s: no cluster variable", d.File)
		require.Equal(t, "query", cl.Type, d.File)
		require.Regexp(t, `^label_values\((zmy_quorum_up|zmy_responder_[a-z_]+)\{job=~"\$job", instance=~"\$instance"\}, cluster\)$`, cl.QueryString(), d.File)
		requireVariableDatasource(t, d.File+" $cluster", cl.Datasource)

		ids := map[int]bool{}
		panels := d.AllPanels()
		require.NotEmpty(t, panels)
		for _, p := range panels {
			where := d.File + " / " + p.Title
			require.NotEmpty(t, p.Title, "%s: panel %d has no title", d.File, p.ID)
			require.NotEmpty(t, p.Description, "%s: no description", where)
			require.False(t, ids[p.ID], "%s: panel id %d used twice", where, p.ID)
			ids[p.ID] = true
			require.LessOrEqual(t, p.GridPos.X+p.GridPos.W, 24, "%s: wider than the grid", where)
			require.Positive(t, p.GridPos.H, where)
			requireVariableDatasource(t, where, p.Datasource)
			require.NotEmpty(t, p.Targets, "%s: no query", where)
			for _, tg := range p.Targets {
				require.NotEmpty(t, tg.Expr, "%s: target %s has no expr", where, tg.RefID)
				requireVariableDatasource(t, where+" "+tg.RefID, tg.Datasource)
			}
		}
	}
}

// Every panel, target and variable query uses the ${datasource} variable, never a fixed uid,
// so the dashboards import into any Grafana.
func requireVariableDatasource(t *testing.T, where string, ds *Datasource) {
	t.Helper()
	require.NotNil(t, ds, "%s: no datasource", where)
	require.Equal(t, "prometheus", ds.Type, where)
	require.Equal(t, "${datasource}", ds.UID, where)
}

// metricUse is a metric family name and where it is used.
type metricUse map[string][]string

// usedMetrics parses every dashboard expression and every rule expression with the PromQL
// parser and returns the metric families they select, with Prometheus' own series and
// recording-rule outputs left out.
func usedMetrics(t *testing.T) metricUse {
	t.Helper()
	p := parser.NewParser(parser.Options{})
	recorded := map[string]bool{}
	var queries []Query
	files, err := rules.Load()
	require.NoError(t, err)
	for _, f := range files {
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				name := r.Alert
				if r.Record != "" {
					name = r.Record
					recorded[r.Record] = true
				}
				queries = append(queries, Query{"rules/" + f.Name + " / " + name, r.Expr})
			}
		}
	}
	for _, d := range loadDashboards(t) {
		queries = append(queries, d.Queries(testCluster)...)
	}

	used := metricUse{}
	for _, q := range queries {
		require.NotContains(t, q.Expr, "$", "%s: unsubstituted variable in %s", q.Where, q.Expr)
		expr, err := p.ParseExpr(q.Expr)
		require.NoError(t, err, "%s: %s", q.Where, q.Expr)
		names := selectedNames(expr)
		require.NotEmpty(t, names, "%s selects no metric: %s", q.Where, q.Expr)
		for _, name := range names {
			if prometheusOwn[name] || recorded[name] {
				continue
			}
			require.NotContains(t, name, ":", "%s: %s looks like a recording rule that does not exist", q.Where, name)
			used[name] = append(used[name], q.Where)
		}
	}
	return used
}

// selectedNames returns the metric names of every vector selector in expr, by name or by an
// equality matcher on __name__.
func selectedNames(expr parser.Expr) []string {
	var names []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if name == "" && m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name != "" {
			names = append(names, name)
		}
		// {__name__=~"a|b"}: an alternation of literal names selects each of them.
		for _, m := range vs.LabelMatchers {
			if name == "" && m.Name == model.MetricNameLabel && m.Type == labels.MatchRegexp && literalNames.MatchString(m.Value) {
				names = append(names, strings.Split(m.Value, "|")...)
			}
		}
		return nil
	})
	return names
}

var literalNames = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\|[a-zA-Z_:][a-zA-Z0-9_:]*)*$`)

// familyName is the metric family a series name belongs to: a histogram's _bucket, _sum and
// _count series are the family without the suffix.
func familyName(name string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			return base
		}
	}
	return name
}

func TestExpressionsParseAndNameMetrics(t *testing.T) {
	used := usedMetrics(t)
	names := make([]string, 0, len(used))
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("%d metric families used: %s", len(names), strings.Join(names, " "))

	// The metrics the rules and panels are built on, from both sides.
	for _, want := range []string{
		"zmy_quorum_up", "zmy_raft_leader_info", "zmy_shard_last_applied_index", "zmy_peer_heartbeat_rtt_seconds",
		"zmy_partition_score", "zmy_node_clock_seconds",
		"zmy_responder_incidents_total", "zmy_responder_incident_step", "zmy_responder_step_duration_seconds_bucket",
		"zmy_responder_time_to_containment_seconds_bucket", "zmy_responder_breaker_state",
		"zmy_responder_probe_results_total", "zmy_responder_split_brain_threshold_seconds",
		"zmy_responder_clock_offset_seconds", "zmy_responder_silences_total", "zmy_responder_webhook_requests_total",
	} {
		require.Contains(t, used, want)
	}
}

func TestSelectedNamesAndFamilies(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	expr, err := p.ParseExpr(`histogram_quantile(0.9, sum by (le) (rate(a_seconds_bucket[5m]))) / on() group_left {__name__="b_total"} or c{x="1"} offset 1m`)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"a_seconds_bucket", "b_total", "c"}, selectedNames(expr))
	require.Equal(t, "a_seconds", familyName("a_seconds_bucket"))
	require.Equal(t, "a_seconds", familyName("a_seconds_count"))
	require.Equal(t, "b_total", familyName("b_total"))
}

// The rules of Grafana's dashboard-linter (`dashboard-linter lint --strict`, run by hand: it
// does not install from the Go module proxy) that matter here, so that CI keeps them: read-only
// dashboards, job and instance variables that every query is filtered by (a second responder,
// or a second Prometheus job, is never summed in silently), a unit on every panel, and windows
// that mean what the panel shows: rate() over $__rate_interval, event bars over $__interval
// (not overlapping $__rate_interval windows), $__range only in instant queries.
func TestDashboardLinterRules(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	grafanaWindows := strings.NewReplacer("$__rate_interval", "61s", "$__interval", "62s", "$__range", "63s")
	windowOf := map[time.Duration]string{61 * time.Second: "$__rate_interval", 62 * time.Second: "$__interval", 63 * time.Second: "$__range"}
	for _, d := range loadDashboards(t) {
		require.False(t, d.Editable, "%s: dashboards are code: editable must be false", d.File)
		vars := map[string]Variable{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v
		}
		for _, name := range []string{"job", "instance"} {
			v, ok := vars[name]
			require.True(t, ok, "%s: no $%s variable", d.File, name)
			require.Equal(t, "query", v.Type, d.File)
			require.Equal(t, strings.ToUpper(name[:1])+name[1:], v.Label, d.File)
			require.True(t, v.Multi && v.IncludeAll, "%s: $%s is multi-select with All", d.File, name)
			require.Equal(t, ".+", v.AllValue, d.File)
			require.Equal(t, 2, v.Refresh, "%s: $%s reloads on time range change", d.File, name)
			requireVariableDatasource(t, d.File+" $"+name, v.Datasource)
		}
		for _, pn := range d.AllPanels() {
			where := d.File + " / " + pn.Title
			switch pn.Type {
			case "stat", "timeseries", "table", "gauge":
				if len(pn.FieldConfig.Defaults.Mappings) == 0 {
					require.NotEmpty(t, pn.FieldConfig.Defaults.Unit, "%s: no unit", where)
				}
			}
			for _, tg := range pn.Targets {
				expr, err := p.ParseExpr(grafanaWindows.Replace(tg.Expr))
				require.NoError(t, err, "%s: %s", where, tg.Expr)
				parser.Inspect(expr, func(n parser.Node, path []parser.Node) error {
					switch n := n.(type) {
					case *parser.VectorSelector:
						want := []string{"job", "instance"}
						if n.Name == "ALERTS" {
							// Cluster-level alerts have no instance (dashboards/.lint says so).
							want = want[:1]
						}
						for _, l := range want {
							require.True(t, slicesContainsMatcher(n.LabelMatchers, l), "%s: %s has no %s=~\"$%s\" in %s", where, n, l, l, tg.Expr)
						}
					case *parser.MatrixSelector:
						call, _ := path[len(path)-1].(*parser.Call)
						fn, window := "", windowOf[n.Range]
						if call != nil {
							fn = call.Func.Name
						}
						switch {
						case fn == "rate" || fn == "irate":
							require.Equal(t, "$__rate_interval", window, "%s: %s", where, tg.Expr)
						case fn == "increase" && window == "$__rate_interval":
							t.Errorf("%s: increase over $__rate_interval overlaps from point to point; use $__interval: %s", where, tg.Expr)
						case window == "$__range" && !tg.Instant:
							t.Errorf("%s: $__range in a range query looks back the whole range at every point: %s", where, tg.Expr)
						}
					}
					return nil
				})
			}
		}
	}
}

func slicesContainsMatcher(ms []*labels.Matcher, name string) bool {
	for _, m := range ms {
		if m.Name == name && m.Type == labels.MatchRegexp && m.Value == "$"+name {
			return true
		}
	}
	return false
}

// Every panel's and variable's expression, instantiated, is PromQL that promtool itself accepts:
// they are checked as the expressions of recording rules.
func TestExpressionsPassPromtool(t *testing.T) {
	promtool := testenv.Tool(t, "prometheus", "promtool")
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboards\n    rules:\n")
	n := 0
	for _, d := range loadDashboards(t) {
		for _, q := range d.Queries(testCluster) {
			n++
			fmt.Fprintf(&b, "      # %s\n      - record: dashboard:query:%d\n        expr: %q\n", q.Where, n, q.Expr)
		}
	}
	require.Positive(t, n)
	file := filepath.Join(t.TempDir(), "dashboards.rules.yml")
	require.NoError(t, os.WriteFile(file, []byte(b.String()), 0o644))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, promtool, "check", "rules", file).CombinedOutput()
	require.NoError(t, err, "promtool check rules on the dashboards' expressions:\n%s", out)
	require.Contains(t, string(out), fmt.Sprintf("SUCCESS: %d rules found", n))
}
