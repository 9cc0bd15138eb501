package config

import (
	"slices"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// Defaults of the per-cluster dependency sections.
var (
	DefaultEtcd  = EtcdConfig{DialTimeout: model.Duration(2 * time.Second)}
	DefaultRedis = RedisConfig{MaxLatency: model.Duration(100 * time.Millisecond)}
)

// The UnmarshalYAML methods below follow blackbox_exporter: start from the Default* values, then
// decode over them through a method-less alias type ("type plain") so that only the keys present
// in the file change anything.

func (c *Config) setDefaults() {
	*c = Config{
		Webhook:      DefaultWebhook,
		Alertmanager: DefaultAlertmanager,
		Silences:     DefaultSilences,
		Detection:    DefaultDetection,
		Remediation:  DefaultRemediation,
		Storage:      StorageConfig{Etcd: DefaultEtcdStorage},
	}
	// Defaults hold slices; clone so that no config ever aliases the package-level values.
	c.Webhook.ClusterLabels = slices.Clone(DefaultWebhook.ClusterLabels)
}

// UnmarshalYAML applies the defaults, then the document.
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	c.setDefaults()
	type plain Config
	return n.Decode((*plain)(c))
}

// UnmarshalYAML applies DefaultWebhook, then the document.
func (w *WebhookConfig) UnmarshalYAML(n *yaml.Node) error {
	*w = DefaultWebhook
	w.ClusterLabels = slices.Clone(DefaultWebhook.ClusterLabels)
	type plain WebhookConfig
	return n.Decode((*plain)(w))
}

// UnmarshalYAML applies DefaultAlertmanager, then the document.
func (a *AlertmanagerConfig) UnmarshalYAML(n *yaml.Node) error {
	*a = DefaultAlertmanager
	type plain AlertmanagerConfig
	return n.Decode((*plain)(a))
}

// UnmarshalYAML applies DefaultDetection, then the document.
func (d *DetectionConfig) UnmarshalYAML(n *yaml.Node) error {
	*d = DefaultDetection
	type plain DetectionConfig
	return n.Decode((*plain)(d))
}

// UnmarshalYAML applies DefaultRemediation, then the document.
func (r *RemediationConfig) UnmarshalYAML(n *yaml.Node) error {
	*r = DefaultRemediation
	type plain RemediationConfig
	return n.Decode((*plain)(r))
}

// UnmarshalYAML decodes a cluster and fills the defaults that depend on its name.
func (c *ClusterConfig) UnmarshalYAML(n *yaml.Node) error {
	*c = ClusterConfig{Driver: DriverZmyctl, AdminAPI: AdminAPIConfig{HTTPClientConfig: commoncfg.DefaultHTTPClientConfig}}
	type plain ClusterConfig
	if err := n.Decode((*plain)(c)); err != nil {
		return err
	}
	if c.Etcd != nil && c.Etcd.KeyPrefix == "" {
		c.Etcd.KeyPrefix = "/zmy/" + c.Name + "/nodes/"
	}
	return nil
}

// UnmarshalYAML applies DefaultEtcd, then the document.
func (e *EtcdConfig) UnmarshalYAML(n *yaml.Node) error {
	*e = DefaultEtcd
	type plain EtcdConfig
	return n.Decode((*plain)(e))
}

// UnmarshalYAML applies DefaultRedis, then the document.
func (r *RedisConfig) UnmarshalYAML(n *yaml.Node) error {
	*r = DefaultRedis
	type plain RedisConfig
	return n.Decode((*plain)(r))
}
