package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Options says what to start.
type Options struct {
	Dir           string // working directory for configs, data and logs (created)
	RepoRoot      string // for rules/*.yml
	BinDir        string // holds zmysim and zmy-responder
	Cluster       string // default "demo"
	Nodes         int    // default 5
	WriteRate     int    // writes/s of the simulated load; default 50
	Observability bool   // also start Prometheus and Alertmanager
	// Replicas > 1 runs that many responders, r1 … rN, sharing a Debian etcd (etcd-server) as
	// their store (--storage.backend=etcd): one leader per cluster, the others take over.
	// 0 or 1: one responder on the embedded journal.
	Replicas int
	LeaseTTL time.Duration // --ha.lease-ttl with Replicas > 1; default 5s
	// ResponderConfig patches the generated responder config (YAML maps) before it starts.
	ResponderConfig func(cfg map[string]any)
}

// Stack is the running chain.
type Stack struct {
	opts Options

	Sim, Responder, Prometheus, Alertmanager, Etcd *Process // Responder: the first replica's

	SimAdmin        string     // host:port of zmysim's control API
	ResponderURL    string     // http://127.0.0.1:P, the first replica's
	Replicas        []*Replica // every responder; one with the embedded journal
	EtcdURL         string     // the replicas' store with Replicas > 1, else ""
	PrometheusURL   string     // "" without Observability
	AlertmanagerURL string     // "" without Observability
	ConfigPath      string     // the responder's config
}

// Replica is one zmy-responder process of the stack.
type Replica struct {
	Name     string // --ha.replica with an etcd store ("r1", …); "" on the embedded journal
	URL      string // http://127.0.0.1:P
	*Process        // the current run (nil before the first); Kill it as a crash would
	args     []string
}

// Start brings the stack up and waits until every part answers; on error it tears down what it
// started.
func Start(ctx context.Context, o Options) (s *Stack, err error) {
	if o.Cluster == "" {
		o.Cluster = "demo"
	}
	if o.Nodes == 0 {
		o.Nodes = 5
	}
	if o.WriteRate == 0 {
		o.WriteRate = 50
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 5 * time.Second
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("stack dir: %w", err)
	}
	s = &Stack{opts: o}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.allocReplicas(); err != nil {
		return s, err
	}
	if o.Observability {
		if err := s.startAlertmanager(ctx); err != nil {
			return s, err
		}
	}
	if o.Replicas > 1 {
		if err := s.startEtcd(ctx); err != nil {
			return s, err
		}
	}
	if err := s.startSim(ctx); err != nil {
		return s, err
	}
	if err := s.writeResponderConfig(); err != nil {
		return s, err
	}
	for i := range s.Replicas {
		if err := s.StartReplica(ctx, i); err != nil {
			return s, err
		}
	}
	if o.Observability {
		if err := s.startPrometheus(ctx); err != nil {
			return s, err
		}
	}
	return s, nil
}

// Close stops every process, newest first.
func (s *Stack) Close() {
	s.Prometheus.Stop(5 * time.Second)
	for _, r := range s.Replicas {
		r.Process.Stop(5 * time.Second)
	}
	for _, p := range []*Process{s.Sim, s.Etcd, s.Alertmanager} {
		p.Stop(5 * time.Second)
	}
}

// allocReplicas names the responders and gives each a loopback port.
func (s *Stack) allocReplicas() error {
	n := max(s.opts.Replicas, 1)
	for i := range n {
		port, err := FreePort()
		if err != nil {
			return err
		}
		r := &Replica{URL: fmt.Sprintf("http://127.0.0.1:%d", port)}
		if s.opts.Replicas > 1 {
			r.Name = fmt.Sprintf("r%d", i+1)
		}
		s.Replicas = append(s.Replicas, r)
	}
	s.ResponderURL = s.Replicas[0].URL
	return nil
}

// startEtcd runs a one-member Debian etcd for the replicas' shared store.
func (s *Stack) startEtcd(ctx context.Context) error {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		return fmt.Errorf("etcd is not installed (apt-get install etcd-server): %w", err)
	}
	client, err := FreePort()
	if err != nil {
		return err
	}
	peer, err := FreePort()
	if err != nil {
		return err
	}
	s.EtcdURL = fmt.Sprintf("http://127.0.0.1:%d", client)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	s.Etcd, err = StartProcess(s.opts.Dir, "etcd", []string{bin, "--name=stack",
		"--data-dir=" + filepath.Join(s.opts.Dir, "etcd-data"),
		"--listen-client-urls=" + s.EtcdURL, "--advertise-client-urls=" + s.EtcdURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=stack=" + peerURL, "--log-level=warn", "--logger=zap",
	}, nil)
	if err != nil {
		return err
	}
	return waitHTTP(ctx, s.Etcd, s.EtcdURL+"/health")
}

func (s *Stack) bin(name string) string { return filepath.Join(s.opts.BinDir, name) }

func (s *Stack) startAlertmanager(ctx context.Context) error {
	amBin, err := LookPath("prometheus-alertmanager", "alertmanager")
	if err != nil {
		return err
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	s.AlertmanagerURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	// One webhook per replica: each journals the alert, duplicates attach to one incident.
	var hooks strings.Builder
	for _, r := range s.Replicas {
		fmt.Fprintf(&hooks, "      - url: %s/webhook\n        send_resolved: true\n", r.URL)
	}
	// group_wait and group_interval are short so the e2e chain is fast; send_resolved lets the
	// responder see the alert end.
	// As in deploy/alertmanager.yml, only ZMY_Quorum_Down (SOP-ZMY-001) goes to the responder;
	// the other ZMY alerts are symptoms of the same split-brain.
	cfg := fmt.Sprintf(`route:
  receiver: humans
  group_by: [alertname, cluster]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1m
  routes:
    - receiver: zmy-responder
      matchers: ['alertname="ZMY_Quorum_Down"', 'job="zmy"']
receivers:
  - name: humans
  - name: zmy-responder
    webhook_configs:
%s`, hooks.String())
	path := filepath.Join(s.opts.Dir, "alertmanager.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return fmt.Errorf("alertmanager config: %w", err)
	}
	s.Alertmanager, err = StartProcess(s.opts.Dir, "alertmanager", []string{amBin,
		"--config.file=" + path,
		"--storage.path=" + filepath.Join(s.opts.Dir, "alertmanager-data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
		"--cluster.listen-address=",
	}, nil)
	if err != nil {
		return err
	}
	return waitHTTP(ctx, s.Alertmanager, s.AlertmanagerURL+"/-/ready")
}

func (s *Stack) startSim(ctx context.Context) error {
	adminPort, err := FreePort()
	if err != nil {
		return err
	}
	s.SimAdmin = fmt.Sprintf("127.0.0.1:%d", adminPort)
	ready := filepath.Join(s.opts.Dir, "zmysim.ready")
	s.ConfigPath = filepath.Join(s.opts.Dir, "zmy-responder.yml")
	argv := []string{s.bin("zmysim"), "run",
		"--cluster", s.opts.Cluster,
		"--nodes", fmt.Sprint(s.opts.Nodes),
		"--admin-address", s.SimAdmin,
		"--write-rate", fmt.Sprint(s.opts.WriteRate),
		"--responder-config", s.ConfigPath,
		"--prometheus-sd-file", filepath.Join(s.opts.Dir, "zmy-sd.json"),
		"--ready-file", ready,
	}
	if s.AlertmanagerURL != "" {
		argv = append(argv, "--alertmanager-url", s.AlertmanagerURL)
	}
	_ = os.Remove(ready)
	s.Sim, err = StartProcess(s.opts.Dir, "zmysim", argv, nil)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		if _, err := os.Stat(ready); err == nil {
			return nil
		}
		if s.Sim.Exited() {
			return fmt.Errorf("zmysim exited early:\n%s", s.Sim.Tail(2000))
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("waiting for zmysim: %w\n%s", wctx.Err(), s.Sim.Tail(2000))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// writeResponderConfig makes the simulator's generated config fast and demo-friendly.
func (s *Stack) writeResponderConfig() error {
	raw, err := os.ReadFile(s.ConfigPath)
	if err != nil {
		return fmt.Errorf("read generated responder config: %w", err)
	}
	cfg := map[string]any{}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("parse generated responder config: %w", err)
	}
	cfg["api"] = map[string]any{"external_url": s.ResponderURL}
	cfg["remediation"] = map[string]any{
		"gate_poll":      "500ms",
		"gate_timeout":   "5m",
		"verify_timeout": "30s",
		"anti_flap":      "1m",
	}
	cfg["detection"] = map[string]any{"watch_interval": "2s"}
	if s.opts.ResponderConfig != nil {
		s.opts.ResponderConfig(cfg)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encode responder config: %w", err)
	}
	return os.WriteFile(s.ConfigPath, out, 0o644)
}

// StartReplica starts (or restarts after Kill) responder i on its port and storage, and waits
// until it is ready.
func (s *Stack) StartReplica(ctx context.Context, i int) error {
	r := s.Replicas[i]
	if r.args == nil {
		grpcPort, err := FreePort()
		if err != nil {
			return err
		}
		u, err := url.Parse(r.URL)
		if err != nil {
			return fmt.Errorf("responder url: %w", err)
		}
		r.args = []string{s.bin("zmy-responder"),
			"--config.file=" + s.ConfigPath,
			"--web.listen-address=" + u.Host,
			fmt.Sprintf("--grpc.listen-address=127.0.0.1:%d", grpcPort),
		}
		if s.EtcdURL == "" {
			r.args = append(r.args, "--storage.path="+filepath.Join(s.opts.Dir, "responder-data"))
		} else {
			r.args = append(r.args, "--storage.backend=etcd", "--storage.etcd.endpoints="+s.EtcdURL,
				"--ha.replica="+r.Name, "--ha.lease-ttl="+s.opts.LeaseTTL.String())
		}
	}
	name := "zmy-responder"
	if r.Name != "" {
		name += "-" + r.Name
	}
	p, err := StartProcess(s.opts.Dir, name, r.args, nil)
	if err != nil {
		return err
	}
	r.Process = p
	if i == 0 {
		s.Responder = p
	}
	return waitHTTP(ctx, p, r.URL+"/-/ready")
}

// Leader is the index of the replica that says it leads cluster (zmy_responder_leader), or
// -1 when none does right now. With one replica on the embedded journal it is always 0.
func (s *Stack) Leader(ctx context.Context, cluster string) int {
	if s.EtcdURL == "" {
		return 0
	}
	want := fmt.Sprintf("zmy_responder_leader{cluster=%q} 1", cluster)
	for i, r := range s.Replicas {
		if r.Process == nil || r.Exited() {
			continue
		}
		body, err := getText(ctx, r.URL+"/metrics")
		if err == nil && slices.Contains(strings.Split(body, "\n"), want) {
			return i
		}
	}
	return -1
}

func getText(ctx context.Context, u string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return string(b), err
}

func (s *Stack) startPrometheus(ctx context.Context) error {
	promBin, err := LookPath("prometheus")
	if err != nil {
		return err
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	s.PrometheusURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	rules, _ := filepath.Glob(filepath.Join(s.opts.RepoRoot, "rules", "*.yml"))
	var targets []string
	for _, r := range s.Replicas {
		u, _ := url.Parse(r.URL)
		targets = append(targets, u.Host)
	}
	am, _ := url.Parse(s.AlertmanagerURL)
	cfg := map[string]any{
		"global":     map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
		"rule_files": rules,
		"alerting": map[string]any{"alertmanagers": []any{map[string]any{
			"static_configs": []any{map[string]any{"targets": []string{am.Host}}}}}},
		"scrape_configs": []any{
			map[string]any{"job_name": "zmy", "file_sd_configs": []any{map[string]any{
				"files": []string{filepath.Join(s.opts.Dir, "zmy-sd.json")}, "refresh_interval": "5s"}}},
			map[string]any{"job_name": "zmy-responder", "static_configs": []any{map[string]any{
				"targets": targets}}},
		},
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encode prometheus config: %w", err)
	}
	path := filepath.Join(s.opts.Dir, "prometheus.yml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return fmt.Errorf("write prometheus config: %w", err)
	}
	s.Prometheus, err = StartProcess(s.opts.Dir, "prometheus", []string{promBin,
		"--config.file=" + path,
		"--storage.tsdb.path=" + filepath.Join(s.opts.Dir, "prometheus-data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
		"--rules.alert.resend-delay=1s",
	}, nil)
	if err != nil {
		return err
	}
	return waitHTTP(ctx, s.Prometheus, s.PrometheusURL+"/-/ready")
}

// Zmysim runs a zmysim subcommand against this stack's simulator (fault, audit, invariants,
// nodes) and returns its stdout; a non-zero exit is returned as an error with the output.
func (s *Stack) Zmysim(ctx context.Context, sub string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	argv := append([]string{sub, "--admin-address", s.SimAdmin}, args...)
	cmd := exec.CommandContext(ctx, s.bin("zmysim"), argv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("zmysim %s: %w: %s%s", strings.Join(argv, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

// Fault injects a simulator fault, e.g. Fault(ctx, "partition", "n1,n2,n3/n4,n5").
func (s *Stack) Fault(ctx context.Context, args ...string) error {
	_, err := s.Zmysim(ctx, "fault", args...)
	return err
}

// GetJSON GETs base+path and decodes the JSON answer into v.
func GetJSON(ctx context.Context, u string, v any) error {
	return doJSON(ctx, http.MethodGet, u, nil, v)
}

// PostJSON POSTs body as JSON and decodes the answer into v (if non-nil).
func PostJSON(ctx context.Context, u string, body, v any) error {
	return doJSON(ctx, http.MethodPost, u, body, v)
}

func doJSON(ctx context.Context, method, u string, body, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, b)
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s %s: decode: %w", method, u, err)
	}
	return nil
}

// startTimeout bounds every start-up wait: a part that is not up in a minute is broken.
const startTimeout = 60 * time.Second
