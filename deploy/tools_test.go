package deploy

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// optionalTool returns the path of a tool that only adds a check when present (systemd-analyze,
// kubectl), or skips.
func optionalTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not found: this extra check needs it", name)
	}
	return path
}

// runTool runs a tool with a deadline and returns its combined output.
func runTool(t *testing.T, dir string, name string, args ...string) (string, error) {
	t.Helper()
	return runToolEnv(t, dir, nil, name, args...)
}

// runToolEnv is runTool with extra environment variables.
func runToolEnv(t *testing.T, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustStdout runs a tool with a deadline and returns its standard output; stderr goes into the
// failure message only.
func mustStdout(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s %s:\n%s%s", name, strings.Join(args, " "), out, stderr.String())
	return string(out)
}

func mustRun(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	out, err := runTool(t, dir, name, args...)
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
	return out
}
