package remediate

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// realAlertmanager is Debian's prometheus-alertmanager started on loopback for one test.
type realAlertmanager struct {
	URL    string
	cmd    *exec.Cmd
	exited chan struct{}
	args   []string
}

// startAlertmanager runs Alertmanager with a minimal config and waits until it is ready.
func startAlertmanager(t testing.TB) *realAlertmanager {
	t.Helper()
	port := testenv.FreePort(t)
	am := &realAlertmanager{URL: fmt.Sprintf("http://127.0.0.1:%d", port), args: startAlertmanagerArgs(t, port)}
	am.start(t)
	t.Cleanup(am.stop)
	return am
}

// startAlertmanagerArgs is the command line of an Alertmanager on 127.0.0.1:port with a
// minimal config and its own storage.
func startAlertmanagerArgs(t testing.TB, port int) []string {
	t.Helper()
	bin := testenv.Binary(t, "prometheus-alertmanager", "alertmanager")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	require.NoError(t, os.WriteFile(cfg, []byte("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n"), 0o644))
	return []string{bin, "--config.file=" + cfg, "--storage.path=" + filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--cluster.listen-address=", "--log.level=warn"}
}

func (am *realAlertmanager) start(t testing.TB) {
	t.Helper()
	am.cmd = exec.Command(am.args[0], am.args[1:]...)
	am.cmd.Stdout, am.cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, am.cmd.Start())
	exited := make(chan struct{})
	am.exited = exited
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(exited) }(am.cmd)
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("alertmanager exited during start: %v", am.cmd.ProcessState)
		default:
		}
		resp, err := http.Get(am.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager not ready at %s after 20s: %v", am.URL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop kills Alertmanager (its data dir stays, so start brings the same silences back).
func (am *realAlertmanager) stop() {
	if am.cmd != nil && am.cmd.Process != nil {
		_ = am.cmd.Process.Kill()
		<-am.exited
		am.cmd = nil
	}
}
