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
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// zmysimBin is the simulator built once for the package's scenario tests.
var zmysimBin string

// TestMain builds zmysim, and zmysimctl beside it so that the generated config uses the lean
// ctl, as `make build` does.
func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, func(dir string) { zmysimBin = filepath.Join(dir, "zmysim") },
		"./cmd/zmysim", "./cmd/zmysimctl"))
}

// simCluster is a running `zmysim run` and the responder config it wrote.
type simCluster struct {
	t     testing.TB
	sim   *testenv.Sim
	admin string
	cfg   *config.Config
	name  string
}

// startSim runs the real simulator on loopback and loads the responder config it generates.
func startSim(t testing.TB, nodes int, extra ...string) *simCluster {
	t.Helper()
	args := append([]string{"--cluster", "c-test", "--nodes", fmt.Sprint(nodes)}, extra...)
	s := testenv.StartSim(t, zmysimBin, args...)
	cfg, err := config.Load(s.ResponderConfig)
	require.NoError(t, err, "the simulator's responder config must load")
	return &simCluster{t: t, sim: s, admin: s.Admin, cfg: cfg, name: cfg.Clusters[0].Name}
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
