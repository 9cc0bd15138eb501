package deploy

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/zmyorg/zmy-responder/internal/testenv"
	"github.com/zmyorg/zmy-responder/rules"
)

// promtool checks the configuration and, through rule_files, every rule file it loads.
func TestPrometheusConfigIsValid(t *testing.T) {
	promtool := testenv.Tool(t, "prometheus", "promtool")
	out := mustRun(t, ".", promtool, "check", "config", "prometheus.yml")
	require.Contains(t, out, "SUCCESS")
}

func TestPrometheusConfigJobsAndRules(t *testing.T) {
	var cfg struct {
		RuleFiles []string `yaml:"rule_files"`
		Alerting  struct {
			Alertmanagers []map[string]any `yaml:"alertmanagers"`
		} `yaml:"alerting"`
		ScrapeConfigs []struct {
			JobName       string           `yaml:"job_name"`
			FileSDConfigs []map[string]any `yaml:"file_sd_configs"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	b, err := os.ReadFile("prometheus.yml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &cfg))

	// rule_files resolve (relative to this directory) to exactly the rule files rules/ ships.
	var loaded []string
	for _, pattern := range cfg.RuleFiles {
		m, err := filepath.Glob(pattern)
		require.NoError(t, err)
		for _, f := range m {
			loaded = append(loaded, filepath.Base(f))
		}
	}
	names, err := rules.Names()
	require.NoError(t, err)
	require.ElementsMatch(t, names, loaded)

	require.NotEmpty(t, cfg.Alerting.Alertmanagers)

	jobs := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		jobs[sc.JobName] = true
		switch sc.JobName {
		case "zmy":
			// Targets with their cluster and node labels come from file_sd.
			require.NotEmpty(t, sc.FileSDConfigs, "job zmy uses file_sd")
		case "zmy-responder":
			require.NotEmpty(t, sc.StaticConfigs)
			require.Contains(t, sc.StaticConfigs[0].Targets, "127.0.0.1:9095")
		}
	}
	require.True(t, jobs["zmy"], `job "zmy": the ZMY rules select job="zmy"`)
	require.True(t, jobs["zmy-responder"], `job "zmy-responder": the self-alerts select it`)
}
