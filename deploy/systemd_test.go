package deploy

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// unitDirectives parses a systemd unit into key → values, joining continuation lines.
func unitDirectives(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	out := map[string][]string{}
	var pending string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if pending != "" {
			line = pending + " " + line
			pending = ""
		}
		if strings.HasSuffix(line, "\\") {
			pending = strings.TrimSuffix(line, "\\")
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, "%s: not a directive: %q", path, line)
		out[k] = append(out[k], strings.Join(strings.Fields(v), " "))
	}
	require.NoError(t, sc.Err())
	return out
}

func TestSystemdUnitHardening(t *testing.T) {
	d := unitDirectives(t, "zmy-responder.service")
	one := func(k string) string {
		require.Len(t, d[k], 1, k)
		return d[k][0]
	}
	require.Equal(t, "yes", one("DynamicUser"))
	require.Equal(t, "yes", one("NoNewPrivileges"))
	require.Equal(t, "strict", one("ProtectSystem"))
	require.Equal(t, "/bin/kill -HUP $MAINPID", one("ExecReload"))

	// The storage path the daemon writes is the one the sandbox leaves writable.
	exec := one("ExecStart")
	var storage string
	for _, arg := range strings.Fields(exec) {
		if v, ok := strings.CutPrefix(arg, "--storage.path="); ok {
			storage = v
		}
	}
	require.NotEmpty(t, storage, "ExecStart sets --storage.path")
	require.Equal(t, storage, one("ReadWritePaths"))
	require.Equal(t, "/var/lib/"+one("StateDirectory"), storage)
	require.Contains(t, exec, "--web.listen-address=127.0.0.1:9095", "loopback: the example config has no auth")
}

// systemd-analyze verify checks every directive; the binary is swapped for /bin/true since the
// daemon is not installed here.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze := optionalTool(t, "systemd-analyze")
	b, err := os.ReadFile("zmy-responder.service")
	require.NoError(t, err)
	unit := filepath.Join(t.TempDir(), "zmy-responder.service")
	require.NoError(t, os.WriteFile(unit, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/zmy-responder", "/bin/true")), 0o644))
	out, err := runTool(t, ".", analyze, "verify", unit)
	require.NoError(t, err, out)
	require.Empty(t, strings.TrimSpace(out), "systemd-analyze verify reports problems")
}
