package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// problems collects validation errors, each prefixed with the line of the offending key when the
// document has one, so that an operator can go straight to it.
type problems struct {
	doc  *yaml.Node
	errs []error
}

// add records a problem at path, a sequence of mapping keys (string) and sequence indexes (int).
func (p *problems) add(path []any, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	where := pathString(path)
	if line := lineOf(p.doc, path); line > 0 {
		p.errs = append(p.errs, fmt.Errorf("line %d: %s: %s", line, where, msg))
		return
	}
	p.errs = append(p.errs, fmt.Errorf("%s: %s", where, msg))
}

func (p *problems) err() error { return errors.Join(p.errs...) }

func pathString(path []any) string {
	var b strings.Builder
	for _, e := range path {
		switch v := e.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", v)
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(v)
		}
	}
	return b.String()
}

// lineOf returns the line of the deepest node of path present in the document (the key for a
// mapping entry), or 0 when the document is empty.
func lineOf(doc *yaml.Node, path []any) int {
	n := doc
	if n == nil || n.Kind == 0 {
		return 0
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, e := range path {
		switch v := e.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return line
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == v {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
			if !found {
				return line
			}
		case int:
			if n.Kind != yaml.SequenceNode || v >= len(n.Content) {
				return line
			}
			n = n.Content[v]
			line = n.Line
		}
	}
	return line
}

func at(base []any, more ...any) []any {
	return append(append(make([]any, 0, len(base)+len(more)), base...), more...)
}

// clusterNameRE keeps cluster names usable as one URL path segment and as a metric label value.
var clusterNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]*$`)

// envNameRE is a portable environment variable name.
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c *Config) validate(doc *yaml.Node) error {
	p := &problems{doc: doc}
	c.Webhook.validate(p)
	c.API.validate(p)
	if c.Web.GrafanaURL != "" {
		if err := checkURL(c.Web.GrafanaURL); err != nil {
			p.add([]any{"web", "grafana_url"}, "%v", err)
		}
	}
	c.Alertmanager.validate(p)
	c.Silences.validate(p)
	c.Detection.validate(p)
	c.Remediation.validate(p)
	c.Storage.validate(p)

	first := map[string]int{}
	for i := range c.Clusters {
		cl := &c.Clusters[i]
		base := []any{"clusters", i}
		if j, dup := first[cl.Name]; dup && cl.Name != "" {
			p.add(at(base, "name"), "duplicate cluster name %q (also clusters[%d])", cl.Name, j)
		} else {
			first[cl.Name] = i
		}
		cl.validate(p, base)
	}
	return p.err()
}

func (w *WebhookConfig) validate(p *problems) {
	if len(w.ClusterLabels) == 0 {
		p.add([]any{"webhook", "cluster_labels"}, "at least one label name is required")
	}
	for i, l := range w.ClusterLabels {
		if !model.LegacyValidation.IsValidLabelName(l) {
			p.add([]any{"webhook", "cluster_labels", i}, "%q is not a valid label name", l)
		}
	}
	if w.MaxBodyBytes <= 0 {
		p.add([]any{"webhook", "max_body_bytes"}, "must be > 0, got %d", w.MaxBodyBytes)
	}
	if w.MaxAlertsPerIncident <= 0 {
		p.add([]any{"webhook", "max_alerts_per_incident"}, "must be > 0, got %d", w.MaxAlertsPerIncident)
	}
	if w.MaxAlertsPerUnknownCluster <= 0 {
		p.add([]any{"webhook", "max_alerts_per_unknown_cluster"}, "must be > 0, got %d", w.MaxAlertsPerUnknownCluster)
	}
	w.Auth.validate(p, []any{"webhook", "auth"})
}

func (a *APIConfig) validate(p *problems) {
	a.Auth.validate(p, []any{"api", "auth"})
	if a.ExternalURL != "" {
		if err := checkURL(a.ExternalURL); err != nil {
			p.add([]any{"api", "external_url"}, "%v", err)
		}
	}
}

func (a *AuthConfig) validate(p *problems, base []any) {
	if a.BearerTokenFile != "" {
		checkFile(p, at(base, "bearer_token_file"), a.BearerTokenFile)
	}
	if b := a.BasicAuth; b != nil {
		if b.Username == "" {
			p.add(at(base, "basic_auth", "username"), "is required")
		}
		if b.PasswordFile == "" {
			p.add(at(base, "basic_auth", "password_file"), "is required")
		} else {
			checkFile(p, at(base, "basic_auth", "password_file"), b.PasswordFile)
		}
	}
}

// checkFile makes --config.check catch a missing secret file instead of the first request.
func checkFile(p *problems, path []any, name string) {
	b, err := os.ReadFile(name)
	if err != nil {
		p.add(path, "%v", err)
		return
	}
	if strings.TrimSpace(string(b)) == "" {
		p.add(path, "file %s is empty", name)
	}
}

func (a *AlertmanagerConfig) validate(p *problems) {
	base := []any{"alertmanager"}
	if a.URL != "" {
		if err := checkURL(a.URL); err != nil {
			p.add(at(base, "url"), "%v", err)
		}
	}
	if err := a.HTTPClientConfig.Validate(); err != nil {
		p.add(at(base, "http_config"), "%v", err)
	}
	positive(p, at(base, "timeout"), a.Timeout)
	positive(p, at(base, "silence_duration"), a.SilenceDuration)
	positive(p, at(base, "extend_every"), a.ExtendEvery)
	if a.ExtendEvery >= a.SilenceDuration && a.SilenceDuration > 0 {
		p.add(at(base, "extend_every"), "must be shorter than silence_duration (%s), got %s", a.SilenceDuration, a.ExtendEvery)
	}
	if a.CreatedBy == "" {
		p.add(at(base, "created_by"), "must not be empty")
	}
	if _, err := regexp.Compile("^(?:" + a.AlertNameRegex + ")$"); err != nil || a.AlertNameRegex == "" {
		p.add(at(base, "alertname_regex"), "must be a non-empty regular expression: %v", err)
	}
}

func (s *SilencesConfig) validate(p *problems) {
	base := []any{"silences"}
	if _, err := regexp.Compile(s.AckCommentRegex); err != nil || s.AckCommentRegex == "" {
		p.add(at(base, "ack_comment_regex"), "must be a non-empty regular expression: %v", err)
	}
	positive(p, at(base, "watch_interval"), s.WatchInterval)
}

func (d *DetectionConfig) validate(p *problems) {
	base := []any{"detection"}
	positive(p, at(base, "probe_timeout"), d.ProbeTimeout)
	if d.ConfirmWindow < 0 {
		p.add(at(base, "confirm_window"), "must not be negative, got %s", d.ConfirmWindow)
	}
	if d.Concurrency <= 0 {
		p.add(at(base, "concurrency"), "must be > 0, got %d", d.Concurrency)
	}
	unit(p, at(base, "root_cause_partition_score"), d.RootCauseScore)
	positive(p, at(base, "threshold", "min"), d.Threshold.Min)
	if d.Threshold.RTTFactor <= 0 {
		p.add(at(base, "threshold", "rtt_factor"), "must be > 0, got %g", d.Threshold.RTTFactor)
	}
	positive(p, at(base, "threshold", "window"), d.Threshold.Window)
	positive(p, at(base, "threshold", "recompute"), d.Threshold.Recompute)
	positive(p, at(base, "clock_fuse", "max_offset"), d.ClockFuse.MaxOffset)
	positive(p, at(base, "clock_fuse", "max_drift_per_min"), d.ClockFuse.MaxDrift)
	if d.ClockFuse.Breaches <= 0 {
		p.add(at(base, "clock_fuse", "breaches"), "must be > 0, got %d", d.ClockFuse.Breaches)
	}
	d.NodeBreaker.validate(p, at(base, "node_breaker"))
}

func (r *RemediationConfig) validate(p *problems) {
	base := []any{"remediation"}
	positive(p, at(base, "golden_window"), r.GoldenWindow)
	positive(p, at(base, "command_timeout"), r.CommandTimeout)
	positive(p, at(base, "gate_timeout"), r.GateTimeout)
	positive(p, at(base, "gate_poll"), r.GatePoll)
	positive(p, at(base, "verify_timeout"), r.VerifyTimeout)
	unit(p, at(base, "converged_partition_score"), r.ConvergedScore)
	if r.Concurrency <= 0 {
		p.add(at(base, "concurrency"), "must be > 0, got %d", r.Concurrency)
	}
	r.Breaker.validate(p, at(base, "breaker"))
	if r.BlastRadius.MaxClusters < 1 {
		p.add(at(base, "blast_radius", "max_clusters"), "must be >= 1, got %d", r.BlastRadius.MaxClusters)
	}
	if r.BlastRadius.MaxPercent <= 0 || r.BlastRadius.MaxPercent > 100 {
		p.add(at(base, "blast_radius", "max_percent"), "must be in (0, 100], got %g", r.BlastRadius.MaxPercent)
	}
}

func (b *BreakerConfig) validate(p *problems, base []any) {
	if b.ConsecutiveFailures == 0 {
		p.add(at(base, "consecutive_failures"), "must be > 0")
	}
	positive(p, at(base, "cooldown"), b.Cooldown)
}

func (c *ClusterConfig) validate(p *problems, base []any) {
	switch {
	case c.Name == "":
		p.add(at(base, "name"), "is required")
	case !clusterNameRE.MatchString(c.Name):
		p.add(at(base, "name"), "%q must match %s (it is used in URLs and metric labels)", c.Name, clusterNameRE)
	case len(c.Name) > MaxNameBytes:
		p.add(at(base, "name"), "is %d bytes long; at most %d (it is part of the journal's keys)", len(c.Name), MaxNameBytes)
	}
	var uses map[string]bool
	api := c.Driver == DriverAPI
	switch c.Driver {
	case "", DriverZmyctl, DriverAPI:
	default:
		p.add(at(base, "driver"), "%q is not a node driver: want %s (run the zmyctl argv template) or %s (call the nodes' admin API)",
			c.Driver, DriverZmyctl, DriverAPI)
	}
	if err := c.AdminAPI.HTTPClientConfig.Validate(); err != nil {
		p.add(at(base, "admin_api", "http_config"), "%v", err)
	}
	if len(c.Zmyctl) == 0 {
		if !api {
			p.add(at(base, "zmyctl"), "an argv template is required, e.g. [\"zmyctl\", \"--endpoint\", \"{{.Node.Admin}}\"]")
		}
	} else if ts, err := ParseZmyctl(c.Zmyctl); err != nil {
		p.add(at(base, "zmyctl"), "%v", err)
	} else if uses, err = templateUses(ts); err != nil {
		p.add(at(base, "zmyctl"), "%v (fields: .Node.ID .Node.Host .Node.Admin … and .Cluster)", err)
	}
	for _, k := range slices.Sorted(maps.Keys(c.ZmyctlEnv)) {
		if !envNameRE.MatchString(k) {
			p.add(at(base, "zmyctl_env"), "%q is not an environment variable name (%s)", k, envNameRE)
		}
	}
	if c.CommandTimeout < 0 {
		p.add(at(base, "command_timeout"), "must not be negative")
	}
	if len(c.Nodes) == 0 {
		p.add(at(base, "nodes"), "cluster %q has no nodes", c.Name)
	}
	ids := map[string]int{}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		nb := at(base, "nodes", i)
		if n.ID == "" {
			p.add(at(nb, "id"), "is required")
		} else if j, dup := ids[n.ID]; dup {
			p.add(at(nb, "id"), "duplicate node id %q in cluster %q (also nodes[%d])", n.ID, c.Name, j)
		} else {
			ids[n.ID] = i
		}
		n.validate(p, nb, uses)
		if api {
			n.validateAdminURL(p, nb)
		}
	}
	if e := c.Etcd; e != nil {
		eb := at(base, "etcd")
		if len(e.Endpoints) == 0 {
			p.add(at(eb, "endpoints"), "at least one endpoint is required when etcd is set")
		}
		for i, ep := range e.Endpoints {
			if err := checkURL(ep); err != nil {
				p.add(at(eb, "endpoints", i), "%v", err)
			}
		}
		positive(p, at(eb, "dial_timeout"), e.DialTimeout)
	}
	names := map[string]bool{}
	for i, r := range c.Redis {
		rb := at(base, "redis", i)
		if r.Name == "" {
			p.add(at(rb, "name"), "is required")
		} else if names[r.Name] {
			p.add(at(rb, "name"), "duplicate redis name %q", r.Name)
		}
		names[r.Name] = true
		if err := checkHostPort(r.Addr); err != nil {
			p.add(at(rb, "addr"), "%v", err)
		}
		if r.PasswordFile != "" {
			checkFile(p, at(rb, "password_file"), r.PasswordFile)
		}
		positive(p, at(rb, "max_latency"), r.MaxLatency)
	}
}

func (n *NodeConfig) validate(p *problems, base []any, uses map[string]bool) {
	if n.MetricsURL == "" {
		p.add(at(base, "metrics_url"), "is required (the data-plane probe reads it)")
	} else if err := checkURL(n.MetricsURL); err != nil {
		p.add(at(base, "metrics_url"), "%v", err)
	}
	if n.HealthURL != "" {
		if err := checkURL(n.HealthURL); err != nil {
			p.add(at(base, "health_url"), "%v", err)
		}
	}
	if n.PeerAddr == "" {
		p.add(at(base, "peer_addr"), "is required (the network probe dials it)")
	} else if err := checkHostPort(n.PeerAddr); err != nil {
		p.add(at(base, "peer_addr"), "%v", err)
	}
	if n.GRPCAddr != "" {
		if err := checkHostPort(n.GRPCAddr); err != nil {
			p.add(at(base, "grpc_addr"), "%v", err)
		}
	}
	if uses["host"] && n.Host == "" {
		p.add(at(base, "host"), "is required: the zmyctl template uses {{.Node.Host}}")
	}
	if uses["admin"] && n.Admin == "" {
		p.add(at(base, "admin"), "is required: the zmyctl template uses {{.Node.Admin}}")
	}
}

// validateAdminURL checks what the api driver calls: an http(s) base URL without credentials,
// which belong in admin_api.http_config, where they are read from files and never logged.
func (n *NodeConfig) validateAdminURL(p *problems, base []any) {
	if n.Admin == "" {
		p.add(at(base, "admin"), "is required: the api driver calls the admin API at this URL (e.g. https://n1.example.com:8443)")
		return
	}
	// Checked first, so that no message repeats a URL holding a password.
	if u, err := url.Parse(n.Admin); err == nil && u.User != nil {
		p.add(at(base, "admin"), "must not carry credentials: put them in the cluster's admin_api.http_config (read from files, never logged)")
		return
	}
	if err := checkURL(n.Admin); err != nil {
		p.add(at(base, "admin"), "%v (the api driver calls the admin API at this URL)", err)
	}
}

func positive(p *problems, path []any, d model.Duration) {
	if d <= 0 {
		p.add(path, "must be a positive duration, got %s", d)
	}
}

func unit(p *problems, path []any, v float64) {
	if v < 0 || v > 1 || v != v {
		p.add(path, "must be between 0 and 1, got %g", v)
	}
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("URL %q must be http:// or https://", s)
	}
	if u.Host == "" {
		return fmt.Errorf("URL %q has no host", s)
	}
	return nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("address %q must be host:port: %w", s, err)
	}
	if host == "" {
		return fmt.Errorf("address %q has no host", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("address %q has an invalid port", s)
	}
	return nil
}
