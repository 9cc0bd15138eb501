package remediate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// responderBin is the real bin/zmy-responder, built once in TestMain.
var responderBin string

// daemonConfig writes the simulator's generated config with short test intervals.
func daemonConfig(t *testing.T, s *simCluster, extra map[string]map[string]any) string {
	t.Helper()
	raw, err := os.ReadFile(s.cfgPath)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &doc))
	set := map[string]map[string]any{
		"remediation": {"golden_window": "15s", "command_timeout": "5s", "gate_timeout": "30s",
			"gate_poll": "100ms", "verify_timeout": "20s", "anti_flap": "1ms", "require_approval": false},
		"detection": {"shard_tolerance": 3, "probe_timeout": "2s", "confirm_window": "3s"},
		"api":       {"external_url": "http://127.0.0.1:9095"},
	}
	if _, ok := doc["alertmanager"]; ok {
		set["alertmanager"] = map[string]any{"timeout": "1s", "extend_every": "300ms", "silence_duration": "5m", "recovered_grace": "0s"}
	}
	for sec, kv := range extra {
		if set[sec] == nil {
			set[sec] = map[string]any{}
		}
		for k, v := range kv {
			set[sec][k] = v
		}
	}
	for sec, kv := range set {
		m, _ := doc[sec].(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		for k, v := range kv {
			m[k] = v
		}
		doc[sec] = m
	}
	out, err := yaml.Marshal(doc)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "zmy-responder.yml")
	require.NoError(t, os.WriteFile(path, out, 0o644))
	return path
}

// daemon is one bin/zmy-responder process.
type daemon struct {
	url    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// startDaemon runs the daemon on the journal in storage; failpoint arms the test SIGKILL.
func startDaemon(t *testing.T, cfgPath, storage, failpoint string) *daemon {
	t.Helper()
	return startDaemonArgs(t, failpoint, "--config.file="+cfgPath, "--storage.path="+storage)
}

// startDaemonArgs runs the daemon with args on a free port; failpoint arms the test SIGKILL.
func startDaemonArgs(t *testing.T, failpoint string, args ...string) *daemon {
	t.Helper()
	port := testenv.FreePort(t)
	d := &daemon{url: fmt.Sprintf("http://127.0.0.1:%d", port), exited: make(chan struct{})}
	d.cmd = exec.Command(responderBin, append([]string{fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
		"--grpc.listen-address=", "--log.level=warn"}, args...)...)
	d.cmd.Env = append(os.Environ(), "ZMY_RESPONDER_FAILPOINT="+failpoint)
	d.cmd.Stderr = os.Stderr
	require.NoError(t, d.cmd.Start())
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(d.kill)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get(d.url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		select {
		case <-d.exited:
			t.Fatalf("zmy-responder exited during start: %v", d.cmd.ProcessState)
		default:
		}
		require.True(t, time.Now().Before(deadline), "zmy-responder not ready after 20s")
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *daemon) kill() {
	_ = d.cmd.Process.Kill()
	<-d.exited
}

// killedBySIGKILL waits for the daemon to die at its failpoint.
func (d *daemon) killedBySIGKILL(t *testing.T, within time.Duration) bool {
	t.Helper()
	select {
	case <-d.exited:
		ws, ok := d.cmd.ProcessState.Sys().(syscall.WaitStatus)
		return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
	case <-time.After(within):
		return false
	}
}

func (d *daemon) post(t *testing.T, path string, body any) (int, []byte) {
	t.Helper()
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	resp, err := http.Post(d.url+path, "application/json", bytes.NewReader(raw))
	require.NoError(t, err)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// webhook posts one Alertmanager v4 notification for the cluster and requires a 200.
func (d *daemon) webhook(t *testing.T, cluster, status, receiver string, startsAt time.Time) {
	t.Helper()
	code, body, err := d.tryWebhook(cluster, status, receiver, startsAt)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, string(body))
}

// tryWebhook posts one Alertmanager v4 notification for the cluster.
func (d *daemon) tryWebhook(cluster, status, receiver string, startsAt time.Time) (int, []byte, error) {
	labels := map[string]string{"alertname": "ZMY_Quorum_Down", "cluster": cluster, "job": "zmy"}
	raw, err := json.Marshal(map[string]any{
		"version": "4", "groupKey": `{}:{alertname="ZMY_Quorum_Down"}`, "status": status, "receiver": receiver,
		"groupLabels": map[string]string{"alertname": "ZMY_Quorum_Down"}, "commonLabels": labels,
		"commonAnnotations": map[string]string{}, "externalURL": "http://alertmanager.test", "truncatedAlerts": 0,
		"alerts": []map[string]any{{"status": status, "labels": labels, "annotations": map[string]string{},
			"startsAt": startsAt.UTC().Format(time.RFC3339Nano), "endsAt": "0001-01-01T00:00:00Z",
			"generatorURL": "http://prometheus.test/graph", "fingerprint": "0123456789abcdef"}},
	})
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.Post(d.url+"/webhook", "application/json", bytes.NewReader(raw))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out, nil
}

// incidents lists the daemon's incidents through its API (the journal file is the daemon's).
func (d *daemon) incidents(t *testing.T) []*incident.Incident {
	t.Helper()
	resp, err := http.Get(d.url + "/api/v1/incidents")
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		Incidents []*incident.Incident `json:"incidents"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out.Incidents
}

func (d *daemon) incident(t *testing.T, id string) *incident.Incident {
	t.Helper()
	resp, err := http.Get(d.url + "/api/v1/incidents/" + id)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var inc incident.Incident
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&inc))
	return &inc
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }
