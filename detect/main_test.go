package detect

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
)

// zmysimBin is the simulator built once for the package's scenario tests.
var zmysimBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "detect-zmysim-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir for zmysim:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	zmysimBin = filepath.Join(dir, "zmysim")
	// zmysimctl beside zmysim makes the generated config use the lean ctl, as `make build` does.
	build := exec.Command("go", "build", "-o", dir+"/", "github.com/zmyorg/zmy-responder/cmd/zmysim", "github.com/zmyorg/zmy-responder/cmd/zmysimctl")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build zmysim for the scenario tests: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// simCluster is a running `zmysim run` and the responder config it wrote.
type simCluster struct {
	t     testing.TB
	admin string
	cfg   *config.Config
	name  string
}

// startSim runs the real simulator on loopback and loads the responder config it generates.
func startSim(t testing.TB, nodes int, extra ...string) *simCluster {
	t.Helper()
	dir := t.TempDir()
	ready, respCfg := filepath.Join(dir, "ready.json"), filepath.Join(dir, "zmy-responder.yml")
	args := append([]string{"run", "--cluster", "c-test", "--nodes", fmt.Sprint(nodes),
		"--admin-address", "127.0.0.1:0", "--ready-file", ready, "--responder-config", respCfg,
		"--log.level", "warn"}, extra...)
	cmd := exec.Command(zmysimBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("zmysim stderr:\n%s", stderr.String())
		}
	})

	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(ready); err == nil && len(b) > 0 {
			var info struct {
				Admin string `json:"admin"`
			}
			require.NoError(t, json.Unmarshal(b, &info), "ready file: %s", b)
			cfg, err := config.Load(respCfg)
			require.NoError(t, err, "the simulator's responder config must load")
			return &simCluster{t: t, admin: info.Admin, cfg: cfg, name: cfg.Clusters[0].Name}
		}
		select {
		case <-exited:
			t.Fatalf("zmysim exited before it was ready: %s", stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("zmysim not ready within 20s: %s", stderr.String())
		}
	}
}

// fault injects a fault through `zmysim fault`.
func (s *simCluster) fault(args ...string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, zmysimBin, append([]string{"fault", "--admin-address", s.admin}, args...)...).CombinedOutput()
	require.NoError(s.t, err, "zmysim fault %v: %s", args, out)
}

// auditEntry is one line of `zmysim audit`.
type auditEntry struct {
	Node string   `json:"node"`
	Args []string `json:"args"`
	Exit int      `json:"exit"`
}

func (s *simCluster) audit() []auditEntry {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, zmysimBin, "audit", "--admin-address", s.admin).Output()
	require.NoError(s.t, err)
	var entries []auditEntry
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e auditEntry
		require.NoError(s.t, json.Unmarshal(sc.Bytes(), &e), "audit line %s", sc.Text())
		entries = append(entries, e)
	}
	return entries
}

// requireOnlyReads asserts the simulator received nothing but read commands: Confirm and the
// recovery gate must never mutate a cluster.
func (s *simCluster) requireOnlyReads() {
	s.t.Helper()
	entries := s.audit()
	require.NotEmpty(s.t, entries, "the probes ran zmyctl")
	reads := [][]string{{"status", "--quorum"}, {"raft", "state"}, {"debug", "netcheck", "--full"}}
	for _, e := range entries {
		words := strings.Join(e.Args, " ")
		ok := false
		for _, r := range reads {
			if strings.HasPrefix(words, strings.Join(r, " ")) {
				ok = true
			}
		}
		require.True(s.t, ok, "%s received a command that is not a read: %q", e.Node, words)
	}
}

// prober builds a Prober over the simulator's config with its own registry.
func (s *simCluster) prober(mutate ...func(*config.Config)) (*Prober, *prometheus.Registry) {
	for _, m := range mutate {
		m(s.cfg)
	}
	reg := prometheus.NewRegistry()
	return NewProber(s.cfg, Options{Registerer: reg}), reg
}
