package receiver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The webhook never waits behind probe work: with the real runbook (prober and engine) whose
// watch rounds hold the daemon's whole probe budget on a zmyctl that does not answer for ten
// minutes, and more probes queued for a slot, notifications for the watched cluster are
// journaled and answered 200 — the incident's own confirmation queues for a slot in the engine,
// not in the request. Were the webhook to wait on anything the probes hold (a lock, a slot), the
// request would run into its deadline.
func TestWebhookDoesNotWaitForProbes(t *testing.T) {
	dir := t.TempDir()
	hung := filepath.Join(dir, "zmyctl")
	require.NoError(t, os.WriteFile(hung, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755))
	cfg := configFile(t, `
detection:
  concurrency: 1
  watch_interval: 1s
  probe_timeout: 10m
  threshold: {min: 10m}
clusters:
  - name: east
    zmyctl: ["`+hung+`"]
    nodes:
      - {id: n1, metrics_url: "http://127.0.0.1:1/metrics", peer_addr: "127.0.0.1:1"}
      - {id: n2, metrics_url: "http://127.0.0.1:1/metrics", peer_addr: "127.0.0.1:1"}
`)
	r := startRun(t, Options{ConfigFile: cfg, NewRunbook: DefaultRunbook})

	waitUntil(t, 30*time.Second, "the watch round to hold the only probe slot while other probes wait", func() bool {
		return metricValue(t, r.reg, "zmy_responder_probe_slots_in_use") >= 1 &&
			metricValue(t, r.reg, "zmy_responder_probe_slots_waiting") >= 1
	})

	for i, fp := range []string{"fp-1", "fp-2", "fp-3"} {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url+"/webhook", bytes.NewReader(notification("east", fp)))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err, "notification %d answered while every probe slot is held", i)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
		var out webhookResult
		require.NoError(t, json.Unmarshal(body, &out))
		require.Len(t, out.Incidents, 1)
		require.Equal(t, i == 0, out.Incidents[0].Created, "%s", body)
	}
	require.GreaterOrEqual(t, metricValue(t, r.reg, "zmy_responder_probe_slots_in_use"), 1.0,
		"the probes still hold the budget: the answers did not come from a freed slot")
}
