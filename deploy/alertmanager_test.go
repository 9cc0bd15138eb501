package deploy

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// alertmanagerConfigs are the single-replica example and the one with a webhook per replica.
var alertmanagerConfigs = []string{"alertmanager.yml", "alertmanager-ha.yml"}

func TestAlertmanagerConfigIsValid(t *testing.T) {
	amtool := testenv.Tool(t, "prometheus-alertmanager", "amtool")
	for _, f := range alertmanagerConfigs {
		mustRun(t, ".", amtool, "check-config", f)
	}
}

// Routing as Alertmanager itself resolves it (`amtool config routes test`), for the labels the
// rules put on each alert, in both examples.
func TestAlertmanagerRoutes(t *testing.T) {
	amtool := testenv.Tool(t, "prometheus-alertmanager", "amtool")
	for _, f := range alertmanagerConfigs {
		testAlertmanagerRoutes(t, amtool, f)
	}
}

func testAlertmanagerRoutes(t *testing.T, amtool, file string) {
	t.Helper()
	for _, tc := range []struct {
		labels    []string
		receivers string
	}{
		// The SOP-ZMY-001 trigger goes to the responder and, after its group_wait, to humans
		// unless the responder silenced it by then.
		{[]string{"alertname=ZMY_Quorum_Down", "job=zmy", "cluster=c1", "severity=critical", "sop=SOP-ZMY-001"}, "zmy-responder,oncall"},
		// Symptoms of the same split-brain: humans only, no second incident in the responder.
		{[]string{"alertname=ZMY_Leader_Conflict", "job=zmy", "cluster=c1", "severity=critical"}, "oncall"},
		{[]string{"alertname=ZMY_Clock_Skew", "job=zmy", "cluster=c1", "node=n1", "severity=warning"}, "oncall"},
		// A ZMY_Quorum_Down from another job is not ZMY's.
		{[]string{"alertname=ZMY_Quorum_Down", "job=other", "cluster=c1"}, "oncall"},
		// The responder's own alerts never reach the responder.
		{[]string{"alertname=ZMYResponderDown", "job=zmy-responder", "severity=critical"}, "oncall"},
	} {
		args := append([]string{"config", "routes", "test", "--config.file=" + file,
			"--verify.receivers=" + tc.receivers}, tc.labels...)
		out := mustStdout(t, ".", amtool, args...)
		require.Equal(t, tc.receivers, firstLine(out), "%s: receivers for %v", file, tc.labels)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

// The responder's receiver: what the daemon's webhook expects of Alertmanager (README, "Pointing
// Alertmanager at it").
func TestAlertmanagerResponderReceiver(t *testing.T) {
	var cfg struct {
		Route struct {
			GroupBy []string `yaml:"group_by"`
			Routes  []struct {
				GroupBy []string `yaml:"group_by"`
				Routes  []struct {
					Receiver       string `yaml:"receiver"`
					GroupWait      string `yaml:"group_wait"`
					RepeatInterval string `yaml:"repeat_interval"`
				} `yaml:"routes"`
			} `yaml:"routes"`
		} `yaml:"route"`
		Receivers []struct {
			Name           string `yaml:"name"`
			WebhookConfigs []struct {
				URL          string `yaml:"url"`
				SendResolved bool   `yaml:"send_resolved"`
				HTTPConfig   struct {
					Authorization struct {
						Type            string `yaml:"type"`
						CredentialsFile string `yaml:"credentials_file"`
					} `yaml:"authorization"`
				} `yaml:"http_config"`
			} `yaml:"webhook_configs"`
		} `yaml:"receivers"`
	}
	b, err := os.ReadFile("alertmanager.yml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &cfg))

	require.Equal(t, []string{"alertname", "cluster"}, cfg.Route.GroupBy)
	require.Len(t, cfg.Route.Routes, 1)
	require.Equal(t, []string{"alertname", "cluster"}, cfg.Route.Routes[0].GroupBy)
	found := false
	for _, r := range cfg.Route.Routes[0].Routes {
		if r.Receiver == "zmy-responder" {
			found = true
			require.Equal(t, "0s", r.GroupWait, "the golden window starts with the alert")
			require.NotEmpty(t, r.RepeatInterval)
		}
	}
	require.True(t, found, "a route to zmy-responder")

	var names []string
	for _, r := range cfg.Receivers {
		names = append(names, r.Name)
		if r.Name != "zmy-responder" {
			continue
		}
		require.Len(t, r.WebhookConfigs, 1)
		w := r.WebhookConfigs[0]
		require.Equal(t, "http://127.0.0.1:9095/webhook", w.URL)
		require.True(t, w.SendResolved)
		require.Equal(t, "Bearer", w.HTTPConfig.Authorization.Type)
		require.NotEmpty(t, w.HTTPConfig.Authorization.CredentialsFile)
	}
	require.Contains(t, names, "zmy-responder")
	require.Contains(t, names, "oncall", "a human receiver")
}
