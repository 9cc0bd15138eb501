// Package e2e proves the whole chain with real parts: Debian's Prometheus and Alertmanager, the
// simulator and the responder on loopback. Partition → the rule fires → Alertmanager delivers →
// confirmed → one silence → contained → approved through the API → heal → recovered → the alert
// resolves and the silence ends. `make e2e` runs it; it is part of `make test`.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/dashboards"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/stack"
	"github.com/zmyorg/zmy-responder/internal/testenv"
)

var binDir string

// TestMain builds the binaries as `make build` does, zmysimctl included.
func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, func(dir string) { binDir = dir },
		"./cmd/zmysim", "./cmd/zmysimctl", "./cmd/zmy-responder"))
}

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

func requireTools(t *testing.T) {
	t.Helper()
	testenv.Binary(t, "prometheus")
	testenv.Binary(t, "prometheus-alertmanager", "alertmanager")
}

func TestPartitionToRecoveryThroughPrometheusAndAlertmanager(t *testing.T) {
	requireTools(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, stack.Options{
		Dir: t.TempDir(), RepoRoot: repoRoot(), BinDir: binDir, Cluster: "e2e", Nodes: 5,
		Observability: true,
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range []*stack.Process{s.Responder, s.Sim, s.Prometheus, s.Alertmanager} {
				if p != nil {
					t.Logf("--- %s log tail ---\n%s", p.Name, p.Tail(4000))
				}
			}
		}
		s.Close()
	})

	// Let Prometheus scrape a healthy cluster first, so the rule sees the change.
	waitFor(t, ctx, 30*time.Second, "first scrapes of the zmy job", func() (bool, error) {
		n, err := promCount(ctx, s.PrometheusURL, `up{job="zmy"} == 1`)
		return n == 5, err
	})

	require.NoError(t, s.Fault(ctx, "partition", "n1,n2,n3/n4,n5"))
	partitionAt := time.Now()

	var id string
	waitFor(t, ctx, 60*time.Second, "an incident opened by Alertmanager's delivery", func() (bool, error) {
		incs, err := incidents(ctx, s.ResponderURL)
		for _, inc := range incs {
			if inc.Cluster == "e2e" && inc.Alertname == "ZMY_Quorum_Down" {
				id = inc.ID
			}
		}
		return id != "", err
	})

	inc := waitIncident(t, ctx, s, id, 60*time.Second, func(inc *incident.Incident) bool {
		return inc.Step == incident.StepAwaitingRecovery || !inc.Open()
	})
	require.Equal(t, incident.StepAwaitingRecovery, inc.Step, "incident ended early: %s %s", inc.Outcome, inc.Reason)
	require.NotNil(t, inc.Verdict)
	require.Equal(t, incident.VerdictConfirmed, inc.Verdict.Kind)
	require.NotNil(t, inc.ContainedAt, "containment time")
	require.NotEmpty(t, inc.Alerts)
	require.Contains(t, inc.Alerts[0].GroupKey, "ZMY_Quorum_Down", "groupKey from Alertmanager")
	received := inc.Alerts[0].ReceivedAt
	t.Logf("partition → containment %s (detection by Prometheus+Alertmanager %s, response %s)",
		inc.ContainedAt.Sub(partitionAt).Round(time.Millisecond),
		received.Sub(partitionAt).Round(time.Millisecond), inc.ContainedAt.Sub(received).Round(time.Millisecond))

	// Exactly one active silence, ours, naming the incident.
	active := silences(t, ctx, s.AlertmanagerURL, "active")
	require.Len(t, active, 1, "one silence while the responder works")
	require.Contains(t, active[0].Comment, id)

	require.NoError(t, s.Fault(ctx, "heal"))
	require.NoError(t, stack.PostJSON(ctx, s.ResponderURL+"/api/v1/incidents/"+id+"/approve",
		map[string]string{"by": "e2e-test", "reason": "network converged"}, nil))

	inc = waitIncident(t, ctx, s, id, 90*time.Second, func(inc *incident.Incident) bool { return !inc.Open() })
	require.Equal(t, incident.OutcomeRecovered, inc.Outcome, inc.Reason)

	out, err := s.Zmysim(ctx, "invariants")
	require.NoError(t, err, "invariant violations: %s", out)

	waitFor(t, ctx, 60*time.Second, "ZMY_Quorum_Down to resolve in Prometheus", func() (bool, error) {
		n, err := promCount(ctx, s.PrometheusURL, `ALERTS{alertname="ZMY_Quorum_Down",cluster="e2e"}`)
		return n == 0, err
	})
	// After recovered the silence ends recovered_grace (30s) later, not at once.
	waitFor(t, ctx, 60*time.Second, "the silence to be expired", func() (bool, error) {
		return len(silences(t, ctx, s.AlertmanagerURL, "active")) == 0, nil
	})
	require.NotEmpty(t, silences(t, ctx, s.AlertmanagerURL, "expired"))

	metrics := scrape(t, ctx, s.ResponderURL+"/metrics")
	require.Regexp(t, `(?m)^zmy_responder_incidents_total\{cluster="e2e",outcome="recovered"\} 1$`, metrics)
	require.Regexp(t, `(?m)^zmy_responder_time_to_containment_seconds_count\{cluster="e2e"\} 1$`, metrics)
	require.Regexp(t, `(?m)^zmy_responder_silences_total\{action="created"\} 1$`, metrics)

	// Every dashboard panel's query returns data from the live Prometheus, once it has scraped
	// the responder after the incident.
	time.Sleep(3 * time.Second)
	for _, q := range dashboardQueries(t) {
		n, err := promCount(ctx, s.PrometheusURL, q.Expr)
		require.NoError(t, err, "%s: %s", q.Where, q.Expr)
		require.Positive(t, n, "%s returned no data: %s", q.Where, q.Expr)
	}
}

func waitIncident(t *testing.T, ctx context.Context, s *stack.Stack, id string, d time.Duration, done func(*incident.Incident) bool) *incident.Incident {
	t.Helper()
	var inc incident.Incident
	waitFor(t, ctx, d, "incident "+id, func() (bool, error) {
		inc = incident.Incident{}
		if err := stack.GetJSON(ctx, s.ResponderURL+"/api/v1/incidents/"+id, &inc); err != nil {
			return false, err
		}
		return done(&inc), nil
	})
	return &inc
}

func waitFor(t *testing.T, ctx context.Context, d time.Duration, what string, f func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var lastErr error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		ok, err := f()
		if ok {
			return
		}
		lastErr = err
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s (last error: %v)", d, what, lastErr)
}

func incidents(ctx context.Context, base string) ([]incident.Incident, error) {
	var raw json.RawMessage
	if err := stack.GetJSON(ctx, base+"/api/v1/incidents", &raw); err != nil {
		return nil, err
	}
	var list []incident.Incident
	if err := json.Unmarshal(raw, &list); err == nil {
		return list, nil
	}
	var wrapped struct {
		Incidents []incident.Incident `json:"incidents"`
	}
	err := json.Unmarshal(raw, &wrapped)
	return wrapped.Incidents, err
}

type silence struct {
	ID        string `json:"id"`
	Comment   string `json:"comment"`
	CreatedBy string `json:"createdBy"`
	Status    struct {
		State string `json:"state"`
	} `json:"status"`
}

func silences(t *testing.T, ctx context.Context, am, state string) []silence {
	t.Helper()
	var all []silence
	require.NoError(t, stack.GetJSON(ctx, am+"/api/v2/silences", &all))
	var out []silence
	for _, s := range all {
		if s.Status.State == state {
			out = append(out, s)
		}
	}
	return out
}

func promCount(ctx context.Context, prom, expr string) (int, error) {
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
		Error string `json:"error"`
	}
	if err := stack.GetJSON(ctx, prom+"/api/v1/query?query="+url.QueryEscape(expr), &resp); err != nil {
		return 0, err
	}
	if resp.Status != "success" {
		return 0, fmt.Errorf("query %q: %s", expr, resp.Error)
	}
	return len(resp.Data.Result), nil
}

func scrape(t *testing.T, ctx context.Context, u string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// dashboardQueries is every panel query of the shipped dashboards, with Grafana's variables
// replaced for this stack's cluster. (Annotations, such as "ZMY alerts firing", are empty once
// the incident is over, as they should be.)
var haOnly = regexp.MustCompile(`\bzmy_responder_leader(_changes_total)?\b`)

func dashboardQueries(t *testing.T) []dashboards.Query {
	t.Helper()
	ds, err := dashboards.Load()
	require.NoError(t, err)
	require.NotEmpty(t, ds)
	var out []dashboards.Query
	for _, d := range ds {
		for _, p := range d.AllPanels() {
			for _, tg := range p.Targets {
				// The leadership series exist only on replicas sharing an etcd store;
				// dashboards.TestHAPanelsReturnData checks those panels against one.
				if tg.Expr != "" && !haOnly.MatchString(tg.Expr) {
					out = append(out, dashboards.Query{Where: d.Title + " / " + p.Title, Expr: dashboards.Substitute(tg.Expr, "e2e")})
				}
			}
		}
	}
	return out
}
