package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Alertmanager is Debian's prometheus-alertmanager running on loopback for one test.
type Alertmanager struct {
	URL string // http://127.0.0.1:port, also its --web.external-url
}

// StartAlertmanager runs Alertmanager on 127.0.0.1:port (0: a free port) with config (YAML) and
// its own storage, without clustering, and waits up to 20s for /-/ready. It skips or fails as
// Binary does when Alertmanager is not installed. Cleanup kills it; its log is logged when the
// test failed.
func StartAlertmanager(t testing.TB, port int, config string) *Alertmanager {
	t.Helper()
	bin := Binary(t, "prometheus-alertmanager", "alertmanager")
	if port != 0 {
		am, err := startAlertmanager(t, bin, port, config)
		if err != nil {
			t.Fatal(err)
		}
		return am
	}
	return onFreePort(t, "alertmanager", func(port int) (*Alertmanager, error) {
		return startAlertmanager(t, bin, port, config)
	})
}

func startAlertmanager(t testing.TB, bin string, port int, config string) (*Alertmanager, error) {
	t.Helper()
	am := &Alertmanager{URL: fmt.Sprintf("http://127.0.0.1:%d", port)}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(config), 0o644))
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--web.external-url="+am.URL,
		"--cluster.listen-address=", "--log.level=warn")
	_, err := StartUntilReady(t, "alertmanager", cmd, am.URL+"/-/ready", 20*time.Second)
	return am, err
}
