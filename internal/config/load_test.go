package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func TestLoadGood(t *testing.T) {
	cfg, err := Load("testdata/good.yml")
	require.NoError(t, err)

	dir, err := filepath.Abs("testdata")
	require.NoError(t, err)
	require.Equal(t, dir, cfg.Dir)

	// Set values win, unset ones keep their defaults.
	require.Equal(t, []string{"zmy_cluster", "cluster"}, cfg.Webhook.ClusterLabels)
	require.Equal(t, int64(2<<20), cfg.Webhook.MaxBodyBytes)
	require.Equal(t, model.Duration(3*time.Second), cfg.Alertmanager.Timeout)
	require.Equal(t, DefaultAlertmanager.SilenceDuration, cfg.Alertmanager.SilenceDuration)
	require.Equal(t, model.Duration(3*time.Second), cfg.Detection.Threshold.Min)
	require.Equal(t, DefaultDetection.Threshold.RTTFactor, cfg.Detection.Threshold.RTTFactor)
	require.Equal(t, DefaultDetection.ProbeTimeout, cfg.Detection.ProbeTimeout)
	require.True(t, cfg.Remediation.DryRun)
	require.True(t, cfg.Remediation.RequireApproval, "default kept when a sibling key is set")
	require.Equal(t, uint32(5), cfg.Remediation.Breaker.ConsecutiveFailures)
	require.Equal(t, DefaultRemediation.Breaker.Cooldown, cfg.Remediation.Breaker.Cooldown)

	// Relative secret paths resolve against the config file's directory.
	require.Equal(t, filepath.Join(dir, "token"), cfg.Webhook.Auth.BearerTokenFile)
	require.Equal(t, filepath.Join(dir, "password"), cfg.API.Auth.BasicAuth.PasswordFile)

	east := cfg.Cluster("east")
	require.NotNil(t, east)
	require.Len(t, east.Nodes, 2)
	require.Equal(t, "/zmy/east/nodes/", east.Etcd.KeyPrefix)
	require.Equal(t, DefaultEtcd.DialTimeout, east.Etcd.DialTimeout)
	require.Equal(t, DefaultRedis.MaxLatency, east.Redis[0].MaxLatency)
	argv, err := east.Argv(east.Nodes[1])
	require.NoError(t, err)
	require.Equal(t, []string{"zmyctl", "--endpoint", "127.0.0.1:7002"}, argv)

	require.Equal(t, DriverZmyctl, east.Driver, "hand-written clusters default to the zmyctl driver")

	west := cfg.Cluster("west")
	require.NotNil(t, west)
	require.NotNil(t, west.RequireApproval)
	require.False(t, *west.RequireApproval)
	require.Nil(t, cfg.Cluster("north"))
}

func TestLoadAPIDriver(t *testing.T) {
	cfg, err := Load("testdata/api_driver.yml")
	require.NoError(t, err)
	dir, err := filepath.Abs("testdata")
	require.NoError(t, err)
	east := cfg.Cluster("east")
	require.Equal(t, DriverAPI, east.Driver)
	require.Empty(t, east.Zmyctl, "the api driver needs no zmyctl argv template")
	hc := east.AdminAPI.HTTPClientConfig
	// Relative files resolve against the config file's directory, like every other secret.
	require.Equal(t, filepath.Join(dir, "token"), hc.Authorization.CredentialsFile)
	require.Equal(t, "Bearer", hc.Authorization.Type)
	require.Equal(t, filepath.Join(dir, "ca.pem"), hc.TLSConfig.CAFile)
	require.Equal(t, filepath.Join(dir, "client.pem"), hc.TLSConfig.CertFile)
	require.Equal(t, filepath.Join(dir, "client-key.pem"), hc.TLSConfig.KeyFile)
	require.True(t, hc.FollowRedirects, "prometheus/common's defaults kept for unset keys")

	_, err = Load("testdata/bad_api_driver.yml")
	require.Error(t, err)
	for _, want := range []string{
		`line 3: clusters[0].driver: "rest" is not a node driver: want zmyctl`,
		`clusters[0].zmyctl: an argv template is required`,
		`line 13: clusters[1].nodes[0].admin: invalid URL "127.0.0.1:8443"`,
		`line 17: clusters[1].nodes[1].admin: must not carry credentials`,
		`line 20: clusters[1].nodes[2].admin: is required: the api driver calls the admin API`,
	} {
		require.Contains(t, err.Error(), want)
	}
	require.NotContains(t, err.Error(), "hunter2", "a password in a URL is never repeated")
}

func TestLoadDefaults(t *testing.T) {
	for _, f := range []string{"testdata/empty.yml", "testdata/null_section.yml"} {
		t.Run(f, func(t *testing.T) {
			cfg, err := Load(f)
			require.NoError(t, err)
			require.Equal(t, DefaultDetection, cfg.Detection)
			require.Equal(t, DefaultRemediation, cfg.Remediation)
			require.Equal(t, DefaultWebhook, cfg.Webhook)
			require.Empty(t, cfg.Clusters)
		})
	}
	// Defaults must not alias: changing one config cannot change the next one.
	a := Default()
	a.Webhook.ClusterLabels[0] = "changed"
	require.Equal(t, "cluster", Default().Webhook.ClusterLabels[0])
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string // substrings of the error
	}{
		{"unknown_field.yml", []string{`line 5: unknown field "probe_timeuot" in detection`}},
		{"unknown_field_node.yml", []string{`line 8: unknown field "metrics" in clusters[0].nodes[0]`}},
		{"duplicate_cluster.yml", []string{`line 6: clusters[1].name: duplicate cluster name "east" (also clusters[0])`}},
		{"duplicate_node.yml", []string{`line 6: clusters[0].nodes[1].id: duplicate node id "n1" in cluster "east" (also nodes[0])`}},
		{"missing_endpoints.yml", []string{
			`line 5: clusters[0].nodes[0].metrics_url: is required`,
			`clusters[0].nodes[0].peer_addr: is required`,
			`clusters[0].nodes[0].admin: is required: the zmyctl template uses {{.Node.Admin}}`,
		}},
		{"bad_template.yml", []string{`line 3: clusters[0].zmyctl:`, `can't evaluate field Adress`}},
		{"bad_zmyctl_env.yml", []string{`line 4: clusters[0].zmyctl_env: "NOT A NAME" is not an environment variable name`}},
		{"unparsable_template.yml", []string{`line 3: clusters[0].zmyctl: zmyctl[2] "{{.Node.Admin": `}},
		{"bad_bounds.yml", []string{
			`line 2: detection.root_cause_partition_score: must be between 0 and 1, got 1.5`,
			`line 4: detection.threshold.min: must be a positive duration, got 0s`,
			`line 6: remediation.converged_partition_score: must be between 0 and 1, got -0.1`,
			`line 8: remediation.blast_radius.max_percent: must be in (0, 100], got 150`,
		}},
		{"empty_cluster_name.yml", []string{`clusters[0].name: is required`}},
		{"missing_secret.yml", []string{`line 3: webhook.auth.bearer_token_file: open `, `does-not-exist: no such file`}},
		{"wrong_type.yml", []string{`line 2: detection.concurrency: want an integer, got "many"`}},
		{"bad_duration.yml", []string{`line 2`, `60 seconds`}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tc.file))
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestLoadBytes(t *testing.T) {
	_, err := LoadBytes([]byte("clusters: []\n---\nclusters: []\n"))
	require.ErrorContains(t, err, "only one YAML document")

	_, err = LoadBytes([]byte("webhook: {cluster_labels: [\"not a label\"]}"))
	require.ErrorContains(t, err, `webhook.cluster_labels[0]: "not a label" is not a valid label name`)

	cfg, err := LoadBytes([]byte("webhook: {max_body_bytes: 10}"))
	require.NoError(t, err)
	require.Equal(t, int64(10), cfg.Webhook.MaxBodyBytes)
	require.Equal(t, []string{"cluster"}, cfg.Webhook.ClusterLabels)
	require.Equal(t, 1000, cfg.Webhook.MaxAlertsPerIncident)
	require.Equal(t, 100, cfg.Webhook.MaxAlertsPerUnknownCluster)

	cfg, err = LoadBytes([]byte("webhook: {max_alerts_per_incident: 50, max_alerts_per_unknown_cluster: 5}"))
	require.NoError(t, err)
	require.Equal(t, 50, cfg.Webhook.MaxAlertsPerIncident)
	require.Equal(t, 5, cfg.Webhook.MaxAlertsPerUnknownCluster)
	_, err = LoadBytes([]byte("webhook: {max_alerts_per_incident: 0}"))
	require.ErrorContains(t, err, "webhook.max_alerts_per_incident: must be > 0, got 0")

	_, err = LoadBytes([]byte("alertmanager: {extend_every: 20m}"))
	require.ErrorContains(t, err, "alertmanager.extend_every: must be shorter than silence_duration (40s)")

	// A cluster name is part of the journal's keys: one over MaxNameBytes is refused.
	long := strings.Repeat("a", MaxNameBytes+1)
	_, err = LoadBytes([]byte(`clusters: [{name: ` + long + `, zmyctl: [zmyctl], nodes: [{id: n1, metrics_url: "http://127.0.0.1:1/metrics", peer_addr: "127.0.0.1:1"}]}]`))
	require.ErrorContains(t, err, "clusters[0].name: is 1025 bytes long; at most 1024")
}

// A wrong type names the key it was given for, and says what was expected.
func TestLoadTypeErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"webhook:\n  cluster_labels: [cluster]\n  max_body_bytes: one meg\n",
			`line 3: webhook.max_body_bytes: want an integer, got "one meg"`},
		{"webhook:\n  cluster_labels: cluster\n", `line 2: webhook.cluster_labels: want a list, got "cluster"`},
		{"detection: 5\n", `line 1: detection: want a mapping of keys to values, got "5"`},
		{"remediation:\n  dry_run: maybe\n", `line 2: remediation.dry_run: want true or false, got "maybe"`},
		{"remediation:\n  converged_partition_score: [0]\n", `line 2: remediation.converged_partition_score: want a number, got a list`},
		{"remediation:\n  breaker: {consecutive_failures: -1}\n",
			`line 2: remediation.breaker.consecutive_failures: want a non-negative integer, got "-1"`},
		{"clusters:\n  - name: {a: b}\n", `line 2: clusters[0].name: want a string, got a mapping`},
		{"detection:\n  probe_timeout: 2 seconds\n", `line 2: detection.probe_timeout: `},
	} {
		_, err := LoadBytes([]byte(tc.doc))
		require.ErrorContains(t, err, tc.want, tc.doc)
	}
}

// A YAML syntax error names the line where the problem is, not where yaml.v3's parser saw the
// enclosing block begin.
func TestLoadSyntaxErrorLine(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"key outdented", "webhook:\n  max_body_bytes: 10\n remediation:\n  dry_run: true\n",
			`parse YAML: line 3: did not find expected key: " remediation:"`},
		{"key mis-indented deep in a cluster",
			"clusters:\n  - name: east\n    nodes:\n    - id: n1\n      metrics_url: http://a\n     peer_addr: x\n",
			`parse YAML: line 6: `},
		{"unclosed list", "webhook:\n  max_body_bytes: 10\nclusters:\n  - name: east\n    zmyctl: [\"zmyctl\", \"--endpoint\"\n    nodes: []\nremediation:\n  dry_run: true\n",
			`parse YAML: line 5: `},
		{"unclosed quote", "clusters:\n  - name: \"east\n    nodes: []\nremediation:\n  dry_run: true\n",
			`parse YAML: line 2: `},
		{"tab", "webhook:\n\tmax_body_bytes: 10\n", `parse YAML: line 2: found character that cannot start any token`},
		{"multi-line list closed, error after it",
			"clusters:\n  - name: east\n    zmyctl: [\"zmyctl\",\n      \"--endpoint\"]\n    nodes: []\n   oops: 1\n",
			`parse YAML: line 6: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadBytes([]byte(tc.doc))
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestWarnings(t *testing.T) {
	for _, doc := range []string{"", "clusters: []\n", "webhook: {max_body_bytes: 10}\n"} {
		cfg, err := LoadBytes([]byte(doc))
		require.NoError(t, err)
		require.Equal(t, []string{"no clusters configured: every alert will be journaled as unknown_cluster and nothing will be remediated"},
			cfg.Warnings(), "%q", doc)
	}
	cfg, err := Load("testdata/good.yml")
	require.NoError(t, err)
	require.Empty(t, cfg.Warnings())
}
