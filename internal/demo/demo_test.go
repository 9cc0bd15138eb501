package demo

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/testenv"
)

var binDir string

// TestMain builds what `make build` puts in bin/ for the demo: the simulator, its ctl and the
// responder.
func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, func(dir string) { binDir = dir },
		"./cmd/zmysim", "./cmd/zmysimctl", "./cmd/zmy-responder"))
}

// runDemo runs the demo bare (it delivers the webhook itself, no Prometheus or Alertmanager)
// and returns its narration; the demo's own error fails the test.
func runDemo(t *testing.T, o Options) string {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	o.RepoRoot, o.BinDir, o.Dir, o.Bare = filepath.Clean(filepath.Join(wd, "..", "..")), binDir, t.TempDir(), true
	o.Timeout = 3 * time.Minute
	var out bytes.Buffer
	err = Run(context.Background(), o, &out)
	t.Logf("narration:\n%s", out.String())
	require.NoError(t, err)
	return out.String()
}

// `make demo` without Prometheus: the incident is recovered with no invariant violated.
func TestDemo(t *testing.T) {
	out := runDemo(t, Options{})
	require.Contains(t, out, "closed: outcome recovered")
	require.Contains(t, out, "Simulator invariant report (zmysim invariants): []")
}

// `make demo-ha`: three replicas on a Debian etcd; the leader is killed with SIGKILL at the
// gate, another replica takes the lead and finishes, and the audit attributes the resumes to it
// (Run itself fails when the killed replica resumed a node or no other replica resumed all five).
func TestDemoHA(t *testing.T) {
	testenv.Binary(t, "etcd")
	out := runDemo(t, Options{HA: true})
	killed := regexp.MustCompile(`The leader, (r\d), now dies: kill -9 \d+`).FindStringSubmatch(out)
	require.NotNil(t, killed, "the narration names the killed leader")
	next := regexp.MustCompile(`Replica (r\d) leads cluster demo [\d.]+m?s after the kill`).FindStringSubmatch(out)
	require.NotNil(t, next, "the narration names the new leader")
	require.NotEqual(t, killed[1], next[1])
	require.Regexp(t, `(?m)^\s+[\d.]+s\s+`+next[1]+`: .*raft resume ×5`, out)
	require.Contains(t, out, "closed: outcome recovered")
	require.Contains(t, out, "Simulator invariant report (zmysim invariants): []")
}
