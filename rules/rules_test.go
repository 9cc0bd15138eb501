package rules

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// runbookBase is where every runbook_url points: a section of RUNBOOKS.md.
const runbookBase = "https://github.com/zmyorg/zmy-responder/blob/main/rules/RUNBOOKS.md#"

// TestPromtool runs what rules/check.sh runs, so that `go test ./rules/...` covers it too.
func TestPromtool(t *testing.T) {
	promtool := testenv.Tool(t, "prometheus", "promtool")
	names, err := Names()
	require.NoError(t, err)
	tests, err := filepath.Glob("tests/*.yml")
	require.NoError(t, err)
	require.NotEmpty(t, tests)

	for _, args := range [][]string{
		append([]string{"check", "rules", "--lint=all", "--lint-fatal"}, names...),
		append([]string{"test", "rules"}, tests...),
	} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		out, err := exec.CommandContext(ctx, promtool, args...).CombinedOutput()
		cancel()
		require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

func loadAlerts(t *testing.T) map[string][]Rule {
	t.Helper()
	files, err := Load()
	require.NoError(t, err)
	alerts := map[string][]Rule{}
	for _, f := range files {
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					alerts[r.Alert] = append(alerts[r.Alert], r)
				}
			}
		}
	}
	require.NotEmpty(t, alerts)
	return alerts
}

func TestAlertsCarrySeverityAndAnnotations(t *testing.T) {
	anchors := runbookAnchors(t)
	for name, rules := range loadAlerts(t) {
		for _, r := range rules {
			require.Contains(t, []string{"critical", "warning"}, r.Labels["severity"], "%s: severity label", name)
			for _, a := range []string{"summary", "description", "runbook_url"} {
				require.NotEmpty(t, strings.TrimSpace(r.Annotations[a]), "%s: %s annotation", name, a)
			}
			url := r.Annotations["runbook_url"]
			require.True(t, strings.HasPrefix(url, runbookBase), "%s: runbook_url %q is not a section of RUNBOOKS.md", name, url)
			anchor := strings.TrimPrefix(url, runbookBase)
			require.True(t, anchors[anchor], "%s: RUNBOOKS.md has no section #%s", name, anchor)
		}
	}
}

// The responder silences `ZMY_.*` for the cluster it works on: its own alerts must not match,
// and the cluster's alerts must, or they would page during an automated remediation.
func TestAlertNamesAndSilenceScope(t *testing.T) {
	silenced := regexp.MustCompile(`^(?:ZMY_.*)$`)
	files, err := Load()
	require.NoError(t, err)
	for _, f := range files {
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				switch f.Name {
				case "zmy.rules.yml":
					require.True(t, silenced.MatchString(r.Alert), "%s must match ZMY_.*", r.Alert)
					require.Regexp(t, `^SOP-ZMY-00[135]$`, r.Labels["sop"], "%s: sop label", r.Alert)
				default:
					require.False(t, silenced.MatchString(r.Alert), "%s must not match ZMY_.*", r.Alert)
				}
			}
		}
	}
}

// promtool's unit test file, only the parts checked here.
type unitTestFile struct {
	Tests []struct {
		Name           string `yaml:"name"`
		AlertRuleTests []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels map[string]string `yaml:"exp_labels"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
		PromQLExprTests []struct {
			Expr string `yaml:"expr"`
		} `yaml:"promql_expr_test"`
	} `yaml:"tests"`
}

func loadUnitTests(t *testing.T) []unitTestFile {
	t.Helper()
	paths, err := filepath.Glob("tests/*.yml")
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	var files []unitTestFile
	for _, p := range paths {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		var f unitTestFile
		require.NoError(t, yaml.Unmarshal(b, &f), p)
		files = append(files, f)
	}
	return files
}

// Every alert has a unit test where it fires and one where it stays quiet; a firing ZMY alert
// carries the cluster label the responder requires, and ZMY_Quorum_Down has job="zmy".
func TestEveryAlertFiresAndStaysQuietInUnitTests(t *testing.T) {
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, f := range loadUnitTests(t) {
		for _, tg := range f.Tests {
			for _, at := range tg.AlertRuleTests {
				if len(at.ExpAlerts) == 0 {
					quiet[at.Alertname] = true
					continue
				}
				fires[at.Alertname] = true
				for _, a := range at.ExpAlerts {
					if strings.HasPrefix(at.Alertname, "ZMY_") {
						require.NotEmpty(t, a.ExpLabels["cluster"], "%s in %q fires without a cluster label", at.Alertname, tg.Name)
					}
					if at.Alertname == "ZMY_Quorum_Down" {
						require.Equal(t, "zmy", a.ExpLabels["job"], "ZMY_Quorum_Down must carry job=\"zmy\"")
					}
				}
			}
		}
	}
	for name := range loadAlerts(t) {
		require.True(t, fires[name], "no unit test makes %s fire", name)
		require.True(t, quiet[name], "no unit test shows %s staying quiet", name)
	}
}

// Every recording rule is either checked by a promql_expr_test or read by an alert that is.
func TestEveryRecordingRuleIsTested(t *testing.T) {
	var used []string
	for _, f := range loadUnitTests(t) {
		for _, tg := range f.Tests {
			for _, et := range tg.PromQLExprTests {
				used = append(used, et.Expr)
			}
		}
	}
	files, err := Load()
	require.NoError(t, err)
	for _, f := range files {
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					used = append(used, r.Expr)
				}
			}
		}
	}
	all := strings.Join(used, "\n")
	for _, f := range files {
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					require.Contains(t, all, r.Record, "recording rule %s is not tested", r.Record)
				}
			}
		}
	}
}

// runbookAnchors returns the GitHub anchors of RUNBOOKS.md's headings.
func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open("RUNBOOKS.md")
	require.NoError(t, err)
	defer f.Close()
	anchors := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "#") {
			continue
		}
		anchors[githubAnchor(strings.TrimLeft(line, "# "))] = true
	}
	require.NoError(t, sc.Err())
	return anchors
}

// githubAnchor is GitHub's heading slug: lower case, punctuation other than - and _ dropped,
// spaces turned into hyphens.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestGithubAnchor(t *testing.T) {
	for heading, want := range map[string]string{
		"SOP-ZMY-001":       "sop-zmy-001",
		"ZMY_Clock_Skew":    "zmy_clock_skew",
		"ZMYResponderDown":  "zmyresponderdown",
		"Runbooks for `x`!": "runbooks-for-x",
	} {
		require.Equal(t, want, githubAnchor(heading), heading)
	}
}
