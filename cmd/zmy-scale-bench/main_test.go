package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/testenv"
)

var binDir string

// smokeEnv set to 1 runs TestScaleBenchSmoke. It is off in `make test`: the smoke run starts the
// daemon and a simulated fleet, and a benchmark belongs in `make test` only as far as it compiles
// and its arithmetic (aggregate_test.go) is right.
const smokeEnv = "ZMY_SCALE_BENCH_SMOKE"

func TestMain(m *testing.M) {
	if os.Getenv(smokeEnv) != "1" {
		os.Exit(m.Run())
	}
	os.Exit(testenv.Main(m, func(dir string) { binDir = dir },
		"./cmd/zmy-responder", "./cmd/zmysimctl", "./cmd/zmy-scale-bench"))
}

// The benchmark in miniature (2 clusters of 3 nodes watched every 500ms, 3 s of webhooks), so
// that `make bench-scale` cannot rot unnoticed: it runs the real daemon against simulated
// clusters and every figure it reports is measured. How fast is `make bench-scale`'s business,
// not this test's. Run it with ZMY_SCALE_BENCH_SMOKE=1 go test ./cmd/zmy-scale-bench/.
func TestScaleBenchSmoke(t *testing.T) {
	if binDir == "" {
		t.Skip("set " + smokeEnv + "=1 to run the benchmark in miniature")
	}
	out := filepath.Join(t.TempDir(), "results.json")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "zmy-scale-bench"), "--bin-dir", binDir,
		"--clusters", "2", "--nodes", "3", "--watch-interval", "500ms", "--warmup", "1s", "--duration", "3s",
		"--rate", "4", "--no-watch-off", "--json", out)
	stdout, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", stdout)
	require.Contains(t, string(stdout), "| 2 × 3 | every 500ms, zmyctl |")

	raw, err := os.ReadFile(out)
	require.NoError(t, err)
	var rs []result
	require.NoError(t, json.Unmarshal(raw, &rs))
	require.Len(t, rs, 1)
	r := rs[0]
	require.Zero(t, r.WebhookErrors, r.FirstWebhookError)
	require.GreaterOrEqual(t, r.Webhooks, 10, "about 12 notifications in 3 s at 4/s")
	require.Positive(t, r.P99)
	require.Positive(t, r.Probes, "the watch probed the clusters during the run")
	require.Positive(t, r.ZmyctlPerMinute, "the watch ran zmyctl")
	require.Positive(t, r.PeakRSSMiB)
	require.True(t, r.Watch)
}
