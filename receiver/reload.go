package receiver

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/zmyorg/zmy-responder/internal/config"
)

// Reconfigurer is a Runbook that takes reloaded configurations in two phases: PrepareConfig
// does everything that can fail and returns commit, which swaps the new config in and cannot
// fail. A reload that fails anywhere never calls commit.
type Reconfigurer interface {
	PrepareConfig(cfg *config.Config) (commit func(), err error)
}

// reloader reloads the configuration from SIGHUP and POST /-/reload, one reload at a time. All
// fallible work (parse, validate, exposure check, the runbook's drivers and silencer, secret
// files) happens before anything is swapped, so a bad file leaves the daemon exactly as it was.
type reloader struct {
	mu       sync.Mutex
	path     string
	exposure exposure
	srv      *Server
	prepare  []func(*config.Config) (commit func(), err error)
	onReload []func(*config.Config)
	logger   *slog.Logger

	success   prometheus.Gauge
	timestamp prometheus.Gauge
}

func newReloader(path string, ex exposure, srv *Server, logger *slog.Logger, reg prometheus.Registerer) (*reloader, error) {
	r := &reloader{
		path: path, exposure: ex, srv: srv, logger: logger,
		success: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "zmy_responder", Name: "config_last_reload_successful",
			Help: "Whether the last configuration reload attempt was successful.",
		}),
		timestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "zmy_responder", Name: "config_last_reload_success_timestamp_seconds",
			Help: "Timestamp of the last successful configuration reload.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{r.success, r.timestamp} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register reload metrics: %w", err)
			}
		}
	}
	// The configuration Run started with is the first successful load.
	r.success.Set(1)
	r.timestamp.SetToCurrentTime()
	return r, nil
}

func (r *reloader) reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cfg, err := config.Load(r.path)
	if err == nil {
		err = r.exposure.check(cfg)
	}
	var commits []func()
	for _, prepare := range r.prepare {
		if err != nil {
			break
		}
		var commit func()
		if commit, err = prepare(cfg); err == nil {
			commits = append(commits, commit)
		}
	}
	if err == nil {
		err = r.srv.SetConfig(cfg) // the last fallible part; it swaps only on success
	}
	if err != nil {
		r.success.Set(0)
		r.logger.Error("configuration reload failed; keeping the previous configuration", "file", r.path, "err", err)
		return err
	}
	for _, commit := range commits {
		commit()
	}
	for _, f := range r.onReload {
		f(cfg)
	}
	r.success.Set(1)
	r.timestamp.SetToCurrentTime()
	r.logger.Info("configuration reloaded", "file", r.path, "clusters", len(cfg.Clusters))
	return nil
}

// exposure is what decides whether an unauthenticated mutating API may be served.
type exposure struct {
	listenAddress string
	// webBasicAuth is true when --web.config.file sets basic_auth_users: exporter-toolkit then
	// authenticates every endpoint, the mutating ones included.
	webBasicAuth bool
}

// check refuses a configuration that would serve the webhook or the mutating API without
// credentials on a non-loopback address, unless api.allow_unauthenticated_mutations says so.
func (e exposure) check(cfg *config.Config) error {
	if e.webBasicAuth || cfg.API.AllowUnauthenticatedMutations || isLoopback(e.listenAddress) {
		return nil
	}
	var open []string
	if cfg.Webhook.Auth.BearerTokenFile == "" && cfg.Webhook.Auth.BasicAuth == nil {
		open = append(open, "webhook.auth")
	}
	if cfg.API.Auth.BearerTokenFile == "" && cfg.API.Auth.BasicAuth == nil {
		open = append(open, "api.auth")
	}
	if len(open) == 0 {
		return nil
	}
	return fmt.Errorf("refusing to serve mutating endpoints without credentials on %s, which is not loopback: "+
		"set %s, or listen on 127.0.0.1 (--web.listen-address=127.0.0.1:9095), or set basic_auth_users in "+
		"--web.config.file, or set api.allow_unauthenticated_mutations: true", e.listenAddress, strings.Join(open, " and "))
}

// isLoopback reports whether a listen address only accepts local connections. An empty host
// (":9095") listens on every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// webConfigHasBasicAuth reads only basic_auth_users from an exporter-toolkit web config; the
// toolkit validates the whole file itself.
func webConfigHasBasicAuth(path string) (bool, error) {
	if path == "" {
		return false, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("read web config: %w", err)
	}
	var wc struct {
		Users map[string]string `yaml:"basic_auth_users"`
	}
	if err := yaml.Unmarshal(b, &wc); err != nil {
		return false, fmt.Errorf("parse web config %s: %w", path, err)
	}
	return len(wc.Users) > 0, nil
}
