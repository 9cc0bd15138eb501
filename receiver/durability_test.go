package receiver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/template"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// notification is a one-alert webhook payload with its own fingerprint.
func notification(cluster, fingerprint string) []byte {
	b, err := json.Marshal(webhook.Message{
		Data: &template.Data{
			Receiver: "zmy-responder", Status: "firing", ExternalURL: "http://am-0:9093",
			Alerts: template.Alerts{{
				Status:      "firing",
				Labels:      template.KV{"alertname": "ZMY_Quorum_Down", "cluster": cluster, "instance": fingerprint},
				StartsAt:    time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
				Fingerprint: fingerprint,
			}},
		},
		Version:  "4",
		GroupKey: fmt.Sprintf(`{}:{alertname="ZMY_Quorum_Down", cluster=%q}`, cluster),
	})
	if err != nil {
		panic(err)
	}
	return b
}

// journaledFingerprints reads every incident over the API and returns the fingerprints of their
// alerts with their delivery counts.
func journaledFingerprints(t *testing.T, env *testEnv) map[string]int {
	t.Helper()
	fps := map[string]int{}
	for cursor := ""; ; {
		// The list is summaries, one page at a time; the alerts are in each incident's detail.
		code, body := env.do(t, "GET", "/api/v1/incidents?limit=100&cursor="+cursor, nil)
		require.Equal(t, 200, code)
		var list struct {
			Incidents  []incident.Summary
			NextCursor string `json:"next_cursor"`
		}
		require.NoError(t, json.Unmarshal(body, &list))
		for _, s := range list.Incidents {
			code, body := env.do(t, "GET", "/api/v1/incidents/"+s.ID, nil)
			require.Equal(t, 200, code)
			var inc incident.Incident
			require.NoError(t, json.Unmarshal(body, &inc))
			for _, a := range inc.Alerts {
				fps[a.Fingerprint] += a.Deliveries
			}
		}
		if cursor = list.NextCursor; cursor == "" {
			return fps
		}
	}
}

// TestDurabilityKill9: 200 deliveries answered 200 by the real binary, kill -9 right after the
// last answer, restart: all 200 are in the journal.
func TestDurabilityKill9(t *testing.T) {
	storage := t.TempDir()
	cfg := configFile(t, testClusters)
	d := startDaemon(t, nil, "--config.file="+cfg, "--storage.path="+storage)

	const total, senders = 200, 8
	var next atomic.Int64
	var wg sync.WaitGroup
	failures := make(chan string, total)
	client := &http.Client{Timeout: 10 * time.Second}
	for range senders {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				// Half for a configured cluster (the engine works on them meanwhile), half unknown.
				cluster := "east"
				if i%2 == 0 {
					cluster = "ghost"
				}
				resp, err := client.Post(d.url+"/webhook", "application/json",
					strings.NewReader(string(notification(cluster, fmt.Sprintf("fp-%03d", i)))))
				if err != nil {
					failures <- err.Error()
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures <- fmt.Sprintf("delivery %d: %d", i, resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	d.kill() // SIGKILL right after the last 200: nothing gets a chance to flush
	close(failures)
	for f := range failures {
		t.Errorf("delivery not acknowledged: %s", f)
	}

	d = startDaemon(t, nil, "--config.file="+cfg, "--storage.path="+storage)
	fps := journaledFingerprints(t, d.env())
	for i := 1; i <= total; i++ {
		fp := fmt.Sprintf("fp-%03d", i)
		require.Equal(t, 1, fps[fp], "delivery %s lost or duplicated after kill -9", fp)
	}
	require.Len(t, fps, total)
}

// TestDurabilityDiskFull: storage that stops accepting writes (a file size limit the daemon
// cannot lift, so it applies to root too) gets 503 — Alertmanager retries — and never a 200 for
// an alert that is not on disk. The daemon stays up.
func TestDurabilityDiskFull(t *testing.T) {
	storage := t.TempDir()
	cfg := configFile(t, "webhook: {max_body_bytes: 16777216, max_alerts_per_unknown_cluster: 1000000}\n"+testClusters)
	// bbolt grows the file 16 MiB at a time past its 64 MiB map: the first growth fits under
	// 20 MB, the second does not, and 10,000-alert notifications reach it in a few requests.
	d := startDaemon(t, []string{"prlimit", "--fsize=20000000", "--"},
		"--config.file="+cfg, "--storage.path="+storage)

	var acked []int
	got503 := false
	for n := 0; n < 20 && !got503; n++ {
		body := bigMessageFrom(10000, n*10000, "ghost")
		code, resp := d.env().do(t, "POST", "/webhook", body)
		switch code {
		case 200:
			acked = append(acked, n)
		case 503:
			got503 = true
			require.Contains(t, errorOf(t, resp), "journal write failed")
		default:
			t.Fatalf("notification %d: %d %s", n, code, resp)
		}
	}
	t.Logf("%d notifications of 10,000 alerts acknowledged before the file size limit; then 503", len(acked))
	require.True(t, got503, "the file size limit was never reached")
	require.NotEmpty(t, acked, "nothing was accepted before the limit")
	code, _ := d.env().doErr("GET", "/healthz")
	require.Equal(t, 200, code, "the daemon survives a full disk")
	code, _ = d.env().doErr("POST", "/webhook")
	require.NotZero(t, code)
	d.kill()

	// Without the limit, everything acknowledged is there.
	d = startDaemon(t, nil, "--config.file="+cfg, "--storage.path="+storage)
	fps := journaledFingerprints(t, d.env())
	require.Len(t, fps, 10000*len(acked), "every acknowledged alert, and only those, is journaled")
}

// bigMessageFrom is bigMessage with fingerprints starting at offset, for cluster.
func bigMessageFrom(n, offset int, cluster string) []byte {
	var msg webhook.Message
	if err := json.Unmarshal(bigMessage(n), &msg); err != nil {
		panic(err)
	}
	for i := range msg.Alerts {
		msg.Alerts[i].Fingerprint = fmt.Sprintf("%016x", offset+i+1)
		msg.Alerts[i].Labels["cluster"] = cluster
	}
	b, err := json.Marshal(msg)
	if err != nil {
		panic(err)
	}
	return b
}
