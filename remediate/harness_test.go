package remediate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/detect"
	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/sim"
	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// zmysimBin is the real bin/zmysim, built once for the package's tests.
var zmysimBin string

// TestMain builds zmysim (with zmysimctl beside it, so that the generated config uses the lean
// ctl, as `make build` does) and the daemon.
func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, func(dir string) {
		zmysimBin, responderBin = filepath.Join(dir, "zmysim"), filepath.Join(dir, "zmy-responder")
	}, "./cmd/zmysim", "./cmd/zmysimctl", "./cmd/zmy-responder"))
}

// simCluster is one `zmysim run` process.
type simCluster struct {
	name    string
	admin   string
	cfgPath string
	proc    *testenv.Sim
}

// startSim runs a simulated cluster and waits for its ready file; amURL goes into the
// generated responder config.
func startSim(t testing.TB, name string, nodes int, amURL string) *simCluster {
	t.Helper()
	args := []string{"--cluster", name, "--nodes", fmt.Sprint(nodes), "--write-rate", "200", "--election-delay", "100ms"}
	if amURL != "" {
		args = append(args, "--alertmanager-url", amURL)
	}
	p := testenv.StartSim(t, zmysimBin, args...)
	return &simCluster{name: name, admin: p.Admin, cfgPath: p.ResponderConfig, proc: p}
}

// zmysim runs a zmysim subcommand against this cluster's control API.
func (s *simCluster) zmysim(t testing.TB, sub string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	argv := append([]string{sub, "--admin-address", s.admin}, args...)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, zmysimBin, argv...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("zmysim %s: %w: %s", strings.Join(argv, " "), err, stderr.String())
	}
	return out, nil
}

func (s *simCluster) fault(t testing.TB, args ...string) {
	t.Helper()
	_, err := s.zmysim(t, "fault", args...)
	require.NoError(t, err)
}

// audit is `zmysim audit`: every zmyctl command the nodes received, oldest first.
func (s *simCluster) audit(t testing.TB) []sim.AuditEntry {
	t.Helper()
	out, err := s.zmysim(t, "audit")
	require.NoError(t, err)
	var entries []sim.AuditEntry
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e sim.AuditEntry
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
		entries = append(entries, e)
	}
	return entries
}

// requireNoViolations is `zmysim invariants`: it must exit 0 and report nothing.
func (s *simCluster) requireNoViolations(t testing.TB) {
	t.Helper()
	out, err := s.zmysim(t, "invariants")
	require.NoError(t, err, "invariant violations: %s", out)
	var vs []sim.Violation
	require.NoError(t, json.Unmarshal(out, &vs))
	require.Empty(t, vs)
}

// Mutating zmyctl commands, by their command words.
var mutating = [][]string{{"raft", "suspend"}, {"raft", "resume"}, {"snapshot", "save"}, {"quorum", "recover"}}

func isCmd(e sim.AuditEntry, words ...string) bool {
	args := slices.DeleteFunc(slices.Clone(e.Args), func(a string) bool { return strings.HasPrefix(a, "-") || a == "json" })
	return len(args) >= len(words) && slices.Equal(args[:len(words)], words)
}

func isMutating(e sim.AuditEntry) bool {
	for _, m := range mutating {
		if isCmd(e, m...) {
			return true
		}
	}
	return false
}

func countMutating(entries []sim.AuditEntry) int {
	n := 0
	for _, e := range entries {
		if isMutating(e) {
			n++
		}
	}
	return n
}

// testConfig loads the generated responder config and shortens every interval so the
// package's tests stay within their budget.
func testConfig(t testing.TB, s *simCluster) *config.Config {
	t.Helper()
	cfg, err := config.Load(s.cfgPath)
	require.NoError(t, err)
	r := &cfg.Remediation
	r.GoldenWindow = model.Duration(15 * time.Second)
	r.CommandTimeout = model.Duration(5 * time.Second)
	r.GateTimeout = model.Duration(30 * time.Second)
	r.GatePoll = model.Duration(100 * time.Millisecond)
	r.VerifyTimeout = model.Duration(20 * time.Second)
	r.AntiFlap = 0
	r.Breaker.Cooldown = model.Duration(time.Minute)
	cfg.Alertmanager.Timeout = model.Duration(time.Second)
	cfg.Alertmanager.ExtendEvery = model.Duration(300 * time.Millisecond)
	cfg.Alertmanager.SilenceDuration = model.Duration(5 * time.Minute)
	cfg.Alertmanager.RecoveredGrace = 0 // expired at once: the tests look at it right after recovered
	cfg.API.ExternalURL = "http://127.0.0.1:9095"
	cfg.Detection.ProbeTimeout = model.Duration(2 * time.Second)
	cfg.Detection.ConfirmWindow = model.Duration(3 * time.Second)
	// Under this harness's write load (200/s) nodes scraped a few ms apart can differ by more
	// than the default tolerance of 2.
	cfg.Detection.ShardTolerance = 3
	return cfg
}

// rig is an engine on a real journal with the real detect.Prober against a simulated cluster.
type rig struct {
	sim    *simCluster
	cfg    *config.Config
	dir    string
	j      *incident.Journal
	p      *detect.Prober
	e      *Engine
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	// wrap, when set, stands between the engine and the real prober (e.g. a gate that lies).
	wrap func(Prober) Prober
	// lead and scan, when set, are the engine's leadership and scan interval (replicas).
	lead    Leadership
	scan    time.Duration
	changes func(context.Context) <-chan struct{}
}

func newRig(t testing.TB, s *simCluster, cfg *config.Config) *rig {
	t.Helper()
	r := &rig{sim: s, cfg: cfg, dir: t.TempDir()}
	r.start(t)
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *rig) start(t testing.TB) {
	t.Helper()
	var err error
	r.j, err = incident.Open(filepath.Join(r.dir, "journal.db"), incident.Options{})
	require.NoError(t, err)
	r.reg = prometheus.NewRegistry()
	r.p = detect.NewProber(r.cfg, detect.Options{Registerer: r.reg})
	var p Prober = r.p
	if r.wrap != nil {
		p = r.wrap(p)
	}
	r.e, err = NewEngine(r.cfg, r.j, p, Options{Registerer: r.reg, Leadership: r.lead, Scan: r.scan, Changes: r.changes})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.e.Run(ctx) }()
}

// stop ends the engine (as a shutdown would) and closes the journal.
func (r *rig) stop(t testing.TB) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	select {
	case err := <-r.done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("engine did not stop within 20s")
	}
	r.cancel = nil
	require.NoError(t, r.j.Close())
}

func (r *rig) restart(t testing.TB) {
	t.Helper()
	r.stop(t)
	r.start(t)
}

// fire delivers a firing ZMY_Quorum_Down for the cluster, as the receiver would, and kicks.
func (r *rig) fire(t testing.TB) string {
	t.Helper()
	return r.deliver(t, "firing", "am-0")
}

func (r *rig) deliver(t testing.TB, status, receiver string) string {
	t.Helper()
	now := time.Now()
	res, err := r.j.Ingest(t.Context(), []incident.Delivery{{
		Cluster: r.sim.name, Alertname: "ZMY_Quorum_Down", Known: true,
		Alert: incident.AlertRecord{
			GroupKey: "{}:{alertname=\"ZMY_Quorum_Down\"}", Receiver: receiver, Fingerprint: "f00dfeed",
			Status: status, StartsAt: now.Add(-time.Minute).Truncate(time.Second), ReceivedAt: now,
			Labels: map[string]string{"alertname": "ZMY_Quorum_Down", "cluster": r.sim.name, "job": "zmy"},
		},
	}})
	require.NoError(t, err)
	require.Len(t, res, 1)
	r.e.Kick(res[0].IncidentID)
	return res[0].IncidentID
}

// waitFor polls the incident until cond holds.
func (r *rig) waitFor(t testing.TB, id string, d time.Duration, what string, cond func(*incident.Incident) bool) *incident.Incident {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		inc, err := r.j.Get(t.Context(), id)
		require.NoError(t, err)
		if cond(inc) {
			return inc
		}
		if time.Now().After(deadline) {
			raw, _ := json.MarshalIndent(inc.Timeline, "", " ")
			t.Fatalf("incident %s: not %s after %s (step %s, outcome %q, reason %q)\ntimeline: %s",
				id, what, d, inc.Step, inc.Outcome, inc.Reason, raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *rig) waitStep(t testing.TB, id string, step incident.Step, d time.Duration) *incident.Incident {
	t.Helper()
	return r.waitFor(t, id, d, "at step "+string(step), func(inc *incident.Incident) bool {
		return inc.Step == step || !inc.Open()
	})
}

func (r *rig) waitClosed(t testing.TB, id string, d time.Duration) *incident.Incident {
	t.Helper()
	return r.waitFor(t, id, d, "closed", func(inc *incident.Incident) bool { return !inc.Open() })
}

// waitConfirmed polls the real prober until the split-brain is visible (divergence takes a
// few writes on both sides).
func (r *rig) waitConfirmed(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := r.p.Confirm(t.Context(), r.sim.name)
		if err == nil && v.Kind == incident.VerdictConfirmed {
			// The data condition is an applied-index spread past the tolerance: let it grow
			// a little more so the engine's own probe cannot land just under it.
			time.Sleep(time.Second)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("split-brain not confirmed after 20s: %+v %v", v, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func approval(by string) incident.Approval { return incident.Approval{By: by, Reason: "test says go"} }
