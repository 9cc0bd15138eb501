package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/zmyorg/zmy-responder/rules"
)

const committed = "../prometheusrule.yaml"

func TestCommittedPrometheusRuleIsUpToDate(t *testing.T) {
	want, err := Generate()
	require.NoError(t, err)
	got, err := os.ReadFile(committed)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got),
		"deploy/kubernetes/prometheusrule.yaml is stale: run `go run ./deploy/kubernetes/gen` from the module root")
}

// The manifest's groups are the rule files' groups, rule for rule, label for label.
func TestPrometheusRuleHoldsEveryRule(t *testing.T) {
	b, err := Generate()
	require.NoError(t, err)
	var pr struct {
		APIVersion string         `yaml:"apiVersion"`
		Kind       string         `yaml:"kind"`
		Metadata   map[string]any `yaml:"metadata"`
		Spec       struct {
			Groups []rules.Group `yaml:"groups"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&pr))
	require.Equal(t, "monitoring.coreos.com/v1", pr.APIVersion)
	require.Equal(t, "PrometheusRule", pr.Kind)

	files, err := rules.Load()
	require.NoError(t, err)
	var want []rules.Group
	for _, f := range files {
		want = append(want, f.Groups...)
	}
	require.Equal(t, want, pr.Spec.Groups)
}

// promtool accepts the manifest's spec as a rule file.
func TestPrometheusRuleSpecPassesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not found under CI: `make test` must install Debian's prometheus package")
		}
		t.Skip("promtool not found: install Debian's prometheus package to run this test")
	}
	b, err := Generate()
	require.NoError(t, err)
	var pr struct {
		Spec yaml.Node `yaml:"spec"`
	}
	require.NoError(t, yaml.Unmarshal(b, &pr))
	spec, err := yaml.Marshal(&pr.Spec)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "prometheusrule.rules.yml")
	require.NoError(t, os.WriteFile(path, spec, 0o644))

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, promtool, "check", "rules", path).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

func TestRunWritesToStdout(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"-o", "-"}, &stdout, &stderr), stderr.String())
	want, err := Generate()
	require.NoError(t, err)
	require.Equal(t, string(want), stdout.String())
	require.Equal(t, 2, run([]string{"-bogus"}, &stdout, &stderr))
}
