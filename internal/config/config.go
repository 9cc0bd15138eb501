// Package config owns zmy-responder's configuration file: its types, their defaults, strict
// loading and validation. Reloads build a whole new *Config; nothing is mutated in place.
package config

import (
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// Config is the whole zmy-responder.yml.
type Config struct {
	Webhook      WebhookConfig      `yaml:"webhook"`
	API          APIConfig          `yaml:"api"`
	Web          WebConfig          `yaml:"web"`
	Alertmanager AlertmanagerConfig `yaml:"alertmanager"`
	Silences     SilencesConfig     `yaml:"silences"`
	Detection    DetectionConfig    `yaml:"detection"`
	Remediation  RemediationConfig  `yaml:"remediation"`
	Clusters     []ClusterConfig    `yaml:"clusters"`
	Storage      StorageConfig      `yaml:"storage"`

	// Dir is the directory of the config file; relative paths in it are resolved against it.
	Dir string `yaml:"-"`
}

// MaxNameBytes bounds a cluster name and an alertname. Both are part of the journal's keys
// (bbolt refuses keys over 32 KiB, and an etcd key should stay small), so a configured cluster
// name longer than this is an error, and an alert label value longer than this is journaled cut
// to this length (internal/incident). A kilobyte is generous for a name.
const MaxNameBytes = 1024

// Cluster returns the named cluster's config, or nil.
func (c *Config) Cluster(name string) *ClusterConfig {
	for i := range c.Clusters {
		if c.Clusters[i].Name == name {
			return &c.Clusters[i]
		}
	}
	return nil
}

// CommandTimeout bounds one zmyctl call on the cluster: its own command_timeout, else
// remediation.command_timeout. Detection and remediation build their drivers with it.
func (c *Config) CommandTimeout(cc *ClusterConfig) time.Duration {
	if cc != nil && cc.CommandTimeout > 0 {
		return time.Duration(cc.CommandTimeout)
	}
	return time.Duration(c.Remediation.CommandTimeout)
}

// AuthConfig is credentials a caller must present. Empty means no authentication.
type AuthConfig struct {
	BearerTokenFile string           `yaml:"bearer_token_file,omitempty"`
	BasicAuth       *BasicAuthConfig `yaml:"basic_auth,omitempty"`
}

// BasicAuthConfig is a username and a file holding the password.
type BasicAuthConfig struct {
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
}

// WebhookConfig is how POST /webhook accepts Alertmanager's notifications.
type WebhookConfig struct {
	// ClusterLabels are the alert label names that identify the cluster, tried in order; the first
	// present names it. Default ["cluster"].
	ClusterLabels []string `yaml:"cluster_labels"`
	MaxBodyBytes  int64    `yaml:"max_body_bytes"` // default 1 MiB; larger bodies get 413
	// MaxAlertsPerIncident is the most distinct alerts one incident stores (default 1000);
	// further new alerts are counted on the incident (dropped_alerts), answered 200, not stored.
	MaxAlertsPerIncident int `yaml:"max_alerts_per_incident"`
	// MaxAlertsPerUnknownCluster is the same cap for the incident of a cluster missing from the
	// configuration (default 100): only evidence of a routing mistake.
	MaxAlertsPerUnknownCluster int        `yaml:"max_alerts_per_unknown_cluster"`
	Auth                       AuthConfig `yaml:"auth"`
}

// APIConfig is the incident/cluster API.
type APIConfig struct {
	Auth AuthConfig `yaml:"auth"` // required for mutating endpoints on a non-loopback listener
	// AllowUnauthenticatedMutations lets the daemon start with a mutating API without credentials
	// on a non-loopback address. Off by default.
	AllowUnauthenticatedMutations bool `yaml:"allow_unauthenticated_mutations"`
	// ExternalURL is how humans reach this daemon; incident links in silence comments use it.
	ExternalURL string `yaml:"external_url"`
}

// WebConfig is the incident console.
type WebConfig struct {
	// GrafanaURL is where Grafana serves the shipped dashboards (e.g. https://grafana.example.com);
	// incident pages link to the responder dashboard for their cluster and time. Empty: no link.
	GrafanaURL string `yaml:"grafana_url"`
}

// AlertmanagerConfig is where silences are created. An empty URL disables silencing.
type AlertmanagerConfig struct {
	URL              string                     `yaml:"url"`
	HTTPClientConfig commoncfg.HTTPClientConfig `yaml:"http_config"`
	Timeout          model.Duration             `yaml:"timeout"` // per API call, default 5s
	// A silence lasts SilenceDuration and is extended every ExtendEvery while work goes on, so a
	// responder that dies leaves a silence that ends at most SilenceDuration later and on-call
	// is paged (deploy/alertmanager.yml re-evaluates the page every 10s). Defaults 40s and 10s.
	SilenceDuration model.Duration `yaml:"silence_duration"`
	ExtendEvery     model.Duration `yaml:"extend_every"`
	// RecoveredGrace: after `recovered` the silence ends this much later rather than at once,
	// so that Prometheus sees the recovery and resolves the alert before the silence stops
	// muting it (else on-call is paged for a remediation that went well). Default 30s; 0 ends
	// it at once.
	RecoveredGrace model.Duration `yaml:"recovered_grace"`
	CreatedBy      string         `yaml:"created_by"` // default "zmy-responder"
	// AlertNames are the alertnames the silence matches (regex alternation). Default ZMY_.*
	AlertNameRegex string `yaml:"alertname_regex"`
}

// SilencesConfig says how the responder reads the silences humans put on a cluster it works on.
type SilencesConfig struct {
	// AckCommentRegex: a human's silence whose comment matches is an acknowledgement ("I am on
	// it"): recorded on the incident, the runbook goes on. Any other human silence on the cluster
	// is a takeover. Default `(?i)^\s*ACK\b` (karma's "ACK! …", the amtool habit "ACK …").
	AckCommentRegex string `yaml:"ack_comment_regex"`
	// WatchInterval is how often an open incident looks at Alertmanager for a human's silence,
	// or a human's expiry of the responder's silence. Default 10s.
	WatchInterval model.Duration `yaml:"watch_interval"`
}

// DetectionConfig tunes the probes and the verdict.
type DetectionConfig struct {
	ProbeTimeout   model.Duration  `yaml:"probe_timeout"`              // per probe call, default 2s
	Concurrency    int             `yaml:"concurrency"`                // probes at once across every cluster, default 64
	ShardTolerance uint64          `yaml:"shard_tolerance"`            // applied-index spread still "equal", default 2
	RootCauseScore float64         `yaml:"root_cause_partition_score"` // default 0.8 (SOP-ZMY-003)
	Threshold      ThresholdConfig `yaml:"threshold"`
	ClockFuse      ClockFuseConfig `yaml:"clock_fuse"`
	NodeBreaker    BreakerConfig   `yaml:"node_breaker"`   // per-node probe breaker
	WatchInterval  model.Duration  `yaml:"watch_interval"` // 0 disables watch mode; default 0
	// ConfirmWindow: an alert whose split-brain the probes do not confirm (yet) is probed again
	// while it fires, until this long after confirming began; only then not_confirmed or
	// inconclusive. 0: one verdict decides. Default 2m.
	ConfirmWindow model.Duration `yaml:"confirm_window"`
}

// ThresholdConfig is the dynamic split-brain threshold of the seed:
// max(Min, RTTFactor × P99(heartbeat RTT over Window) + median sync lag), every Recompute.
type ThresholdConfig struct {
	Min       model.Duration `yaml:"min"`        // default 2s
	RTTFactor float64        `yaml:"rtt_factor"` // default 1.8
	Window    model.Duration `yaml:"window"`     // default 60s
	Recompute model.Duration `yaml:"recompute"`  // default 10s
}

// ClockFuseConfig is the clock-offset fuse.
type ClockFuseConfig struct {
	MaxOffset model.Duration `yaml:"max_offset"`        // default 500ms
	MaxDrift  model.Duration `yaml:"max_drift_per_min"` // default 300ms
	Breaches  int            `yaml:"breaches"`          // consecutive breaches to trip, default 3
}

// BreakerConfig configures a sony/gobreaker circuit breaker.
type BreakerConfig struct {
	ConsecutiveFailures uint32         `yaml:"consecutive_failures"` // default 3
	Cooldown            model.Duration `yaml:"cooldown"`             // Open → HalfOpen
}

// RemediationConfig tunes the runbook.
type RemediationConfig struct {
	DryRun          bool           `yaml:"dry_run"`          // plan and evidence only, default false
	RequireApproval bool           `yaml:"require_approval"` // default true
	GoldenWindow    model.Duration `yaml:"golden_window"`    // containment deadline, default 60s
	CommandTimeout  model.Duration `yaml:"command_timeout"`  // per zmyctl call, default 10s
	GateTimeout     model.Duration `yaml:"gate_timeout"`     // awaiting_recovery → needs_human, default 30m
	GatePoll        model.Duration `yaml:"gate_poll"`        // default 5s
	VerifyTimeout   model.Duration `yaml:"verify_timeout"`   // default 60s
	// ConvergedScore is the netcheck partition_score at or below which the network counts as
	// converged for the recovery gate. Default 0.
	ConvergedScore float64           `yaml:"converged_partition_score"`
	Concurrency    int               `yaml:"concurrency"` // zmyctl calls at once across incidents, default 64
	Breaker        BreakerConfig     `yaml:"breaker"`     // per cluster; default 3 failures, 10m cooldown
	BlastRadius    BlastRadiusConfig `yaml:"blast_radius"`
	AntiFlap       model.Duration    `yaml:"anti_flap"` // no new remediation this soon after one, default 30m
}

// BlastRadiusConfig bounds how many clusters may be remediated at once.
type BlastRadiusConfig struct {
	MaxClusters int     `yaml:"max_clusters"` // default 1
	MaxPercent  float64 `yaml:"max_percent"`  // of configured clusters, default 50
	// RequeueWindow: when a remediation ends, a cluster refused for blast radius this recently,
	// whose alert still fires, is re-evaluated (one at a time, oldest first). Default 10m.
	RequeueWindow model.Duration `yaml:"requeue_window"`
}

// Node drivers: how the responder sends commands to a cluster's nodes.
const (
	// DriverZmyctl runs the zmyctl argv template once per node and command (the default: it is
	// what the SOP names, and it works through ssh or kubectl exec).
	DriverZmyctl = "zmyctl"
	// DriverAPI calls each node's admin HTTP API at its `admin` URL over kept-alive connections.
	DriverAPI = "api"
)

// ClusterConfig is one ZMY cluster.
type ClusterConfig struct {
	Name string `yaml:"name"`
	// Driver is DriverZmyctl (default) or DriverAPI.
	Driver string `yaml:"driver,omitempty"`
	// AdminAPI is the api driver's HTTP client: TLS, credentials, proxy.
	AdminAPI AdminAPIConfig `yaml:"admin_api,omitempty"`
	// Zmyctl is the argv template run per node (text/template over {.Node, .Cluster}), e.g.
	// ["zmyctl","--endpoint","{{.Node.Admin}}"] or ["ssh","{{.Node.Host}}","zmyctl"]. Required
	// with the zmyctl driver; with the api driver it is what the plan and the hand-over
	// instructions name for humans.
	Zmyctl []string `yaml:"zmyctl"`
	// ZmyctlEnv is added to the responder's own environment for every zmyctl process, e.g.
	// {KUBECONFIG: /etc/zmy/kubeconfig} for a kubectl-exec template.
	ZmyctlEnv      map[string]string `yaml:"zmyctl_env,omitempty"`
	CommandTimeout model.Duration    `yaml:"command_timeout"` // overrides remediation.command_timeout
	Nodes          []NodeConfig      `yaml:"nodes"`
	Etcd           *EtcdConfig       `yaml:"etcd,omitempty"`
	Redis          []RedisConfig     `yaml:"redis,omitempty"`
	// Per-cluster overrides; nil means the global value.
	DryRun          *bool          `yaml:"dry_run,omitempty"`
	RequireApproval *bool          `yaml:"require_approval,omitempty"`
	WatchInterval   model.Duration `yaml:"watch_interval,omitempty"`
}

// AdminAPIConfig is how the api driver reaches the nodes' admin API.
type AdminAPIConfig struct {
	// HTTPClientConfig is prometheus/common's HTTP client configuration: authorization
	// (bearer credentials_file), basic_auth, tls_config (ca_file, cert_file, key_file,
	// server_name), proxy_url. Secrets are read from files and never logged.
	HTTPClientConfig commoncfg.HTTPClientConfig `yaml:"http_config"`
}

// NodeConfig is one ZMY node's endpoints.
type NodeConfig struct {
	ID         string `yaml:"id"`
	Host       string `yaml:"host"`                // for argv templates such as ssh
	Admin      string `yaml:"admin"`               // admin endpoint: zmyctl --endpoint, the api driver's base URL
	MetricsURL string `yaml:"metrics_url"`         // http://host:8080/metrics
	HealthURL  string `yaml:"health_url"`          // http://host:8080/healthz
	PeerAddr   string `yaml:"peer_addr"`           // host:7070, dialled by the network probe
	GRPCAddr   string `yaml:"grpc_addr,omitempty"` // grpc.health.v1, optional
}

// EtcdConfig is the cluster's etcd: node lease keys and endpoint health (SOP-ZMY-005).
type EtcdConfig struct {
	Endpoints   []string       `yaml:"endpoints"`
	KeyPrefix   string         `yaml:"key_prefix"`   // default /zmy/<cluster>/nodes/
	DialTimeout model.Duration `yaml:"dial_timeout"` // default 2s
}

// RedisConfig is a Redis dependency checked with PING.
type RedisConfig struct {
	Name         string         `yaml:"name"`
	Addr         string         `yaml:"addr"`
	PasswordFile string         `yaml:"password_file,omitempty"`
	MaxLatency   model.Duration `yaml:"max_latency"` // default 100ms
}

// Defaults are the values of every unset field.
var (
	DefaultWebhook = WebhookConfig{ClusterLabels: []string{"cluster"}, MaxBodyBytes: 1 << 20,
		MaxAlertsPerIncident: 1000, MaxAlertsPerUnknownCluster: 100}

	DefaultAlertmanager = AlertmanagerConfig{
		Timeout:          model.Duration(5 * time.Second),
		SilenceDuration:  model.Duration(40 * time.Second),
		ExtendEvery:      model.Duration(10 * time.Second),
		RecoveredGrace:   model.Duration(30 * time.Second),
		CreatedBy:        "zmy-responder",
		AlertNameRegex:   "ZMY_.*",
		HTTPClientConfig: commoncfg.DefaultHTTPClientConfig,
	}

	DefaultSilences = SilencesConfig{
		AckCommentRegex: `(?i)^\s*ACK\b`,
		WatchInterval:   model.Duration(10 * time.Second),
	}

	DefaultDetection = DetectionConfig{
		ProbeTimeout:   model.Duration(2 * time.Second),
		Concurrency:    64,
		RootCauseScore: 0.8,
		// Writes in flight between two nodes' scrapes make a healthy cluster under load read a
		// spread of 1 now and then; a real split-brain diverges by far more within the alert's 15s.
		ShardTolerance: 2,
		Threshold: ThresholdConfig{
			Min:       model.Duration(2 * time.Second),
			RTTFactor: 1.8,
			Window:    model.Duration(60 * time.Second),
			Recompute: model.Duration(10 * time.Second),
		},
		ClockFuse: ClockFuseConfig{
			MaxOffset: model.Duration(500 * time.Millisecond),
			MaxDrift:  model.Duration(300 * time.Millisecond),
			Breaches:  3,
		},
		NodeBreaker:   BreakerConfig{ConsecutiveFailures: 3, Cooldown: model.Duration(30 * time.Second)},
		ConfirmWindow: model.Duration(2 * time.Minute),
	}

	DefaultRemediation = RemediationConfig{
		RequireApproval: true,
		GoldenWindow:    model.Duration(60 * time.Second),
		CommandTimeout:  model.Duration(10 * time.Second),
		GateTimeout:     model.Duration(30 * time.Minute),
		GatePoll:        model.Duration(5 * time.Second),
		VerifyTimeout:   model.Duration(60 * time.Second),
		Concurrency:     64,
		Breaker:         BreakerConfig{ConsecutiveFailures: 3, Cooldown: model.Duration(10 * time.Minute)},
		BlastRadius:     BlastRadiusConfig{MaxClusters: 1, MaxPercent: 50, RequeueWindow: model.Duration(10 * time.Minute)},
		AntiFlap:        model.Duration(30 * time.Minute),
	}
)
