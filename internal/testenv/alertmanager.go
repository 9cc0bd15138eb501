package testenv

import (
	"fmt"
	"net/http"
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
	// A free port can be taken by another process between FreePort and Alertmanager's bind (a
	// busy CI machine runs many tests at once): then it exits at once, and another port is tried.
	var err error
	for range 3 {
		var am *Alertmanager
		if am, err = startAlertmanager(t, bin, FreePort(t), config); err == nil {
			return am
		}
		t.Logf("alertmanager did not start, trying another port: %v", err)
	}
	t.Fatal(err)
	return nil
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
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start alertmanager: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("alertmanager log:\n%s", log.String())
		}
	})

	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-exited:
			return nil, fmt.Errorf("alertmanager on port %d exited during start: %v\n%s", port, cmd.ProcessState, log.String())
		default:
		}
		resp, err := http.Get(am.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return am, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("alertmanager not ready at %s after 20s: %v", am.URL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
