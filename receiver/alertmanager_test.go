package receiver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// TestRealAlertmanager: a real Alertmanager on loopback routes an alert posted to its API v2 to
// the daemon's webhook, authenticating with a bearer token from a file; the daemon journals it
// with the groupKey, receiver, external URL and fingerprint Alertmanager computed, then records
// the resolved notification.
func TestRealAlertmanager(t *testing.T) {
	dir := t.TempDir()
	token := writeFile(t, dir, "token", "am-to-responder\n")
	r := startRun(t, Options{ConfigFile: configFile(t, fmt.Sprintf("webhook: {auth: {bearer_token_file: %q}}\n", token)+testClusters)})

	am := testenv.StartAlertmanager(t, 0, fmt.Sprintf(`
route:
  receiver: zmy-responder
  group_by: [alertname, cluster]
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: zmy-responder
    webhook_configs:
      - url: %s/webhook
        send_resolved: true
        http_config:
          authorization:
            credentials_file: %s
`, r.url, token))
	amURL := am.URL

	labels := model.LabelSet{"alertname": "ZMY_Quorum_Down", "cluster": "east", "instance": "n1:8080", "job": "zmy"}
	post := func(endsAt time.Time) {
		t.Helper()
		a := map[string]any{"labels": labels, "annotations": map[string]string{"summary": "quorum lost"},
			"startsAt": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)}
		if !endsAt.IsZero() {
			a["endsAt"] = endsAt.UTC().Format(time.RFC3339)
		}
		b, err := json.Marshal([]any{a})
		require.NoError(t, err)
		resp, err := http.Post(amURL+"/api/v2/alerts", "application/json", bytes.NewReader(b))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode)
	}
	post(time.Time{})

	env := r.env()
	var inc incident.Incident
	waitUntil(t, 30*time.Second, "the alert journaled", func() bool {
		code, body := env.do(t, "GET", "/api/v1/incidents/inc-000001", nil)
		return code == 200 && json.Unmarshal(body, &inc) == nil
	})
	require.Equal(t, "east", inc.Cluster)
	require.Equal(t, "ZMY_Quorum_Down", inc.Alertname)
	require.Len(t, inc.Alerts, 1)
	a := inc.Alerts[0]
	require.Equal(t, `{}:{alertname="ZMY_Quorum_Down", cluster="east"}`, a.GroupKey, "the groupKey Alertmanager sent")
	require.Equal(t, "zmy-responder", a.Receiver)
	require.Equal(t, amURL, a.ExternalURL)
	require.Equal(t, labels.Fingerprint().String(), a.Fingerprint)
	require.Equal(t, "firing", a.Status)

	// Resolve it: Alertmanager sends the resolved notification (send_resolved: true).
	post(time.Now().Add(-time.Second))
	waitUntil(t, 30*time.Second, "the resolved notification journaled", func() bool {
		code, body := env.do(t, "GET", "/api/v1/incidents/inc-000001", nil)
		return code == 200 && json.Unmarshal(body, &inc) == nil && inc.ResolvedAt != nil
	})
	require.Len(t, inc.Alerts, 2, "firing and resolved are both on the incident")
}

// waitUntil polls cond every 50ms until it holds or the deadline passes.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
