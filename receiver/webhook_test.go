package receiver

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

func TestWebhookFixtures(t *testing.T) {
	for _, tc := range []struct {
		file    string
		code    int
		errText string                                 // 4xx: substring of the JSON error
		check   func(*testing.T, []*incident.Incident) // 200: what the journal holds
	}{
		{file: "firing.json", code: 200, check: func(t *testing.T, incs []*incident.Incident) {
			require.Len(t, incs, 1)
			inc := incs[0]
			require.Equal(t, "inc-000001", inc.ID)
			require.Equal(t, "east", inc.Cluster)
			require.Equal(t, "ZMY_Quorum_Down", inc.Alertname)
			require.True(t, inc.Open())
			require.Len(t, inc.Alerts, 2)
			a := inc.Alerts[0]
			require.Equal(t, `{}:{alertname="ZMY_Quorum_Down", cluster="east"}`, a.GroupKey)
			require.Equal(t, "zmy-responder", a.Receiver)
			require.Equal(t, "http://am-0:9093", a.ExternalURL)
			require.Equal(t, "firing", a.Status)
			require.Equal(t, time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), a.StartsAt.UTC())
			require.False(t, a.ReceivedAt.IsZero())
			require.Equal(t, "n1:8080", a.Labels["instance"])
		}},
		{file: "resolved.json", code: 200, check: func(t *testing.T, incs []*incident.Incident) {
			require.Len(t, incs, 1)
			require.NotNil(t, incs[0].ResolvedAt)
			require.False(t, incs[0].Open(), "a resolution without a firing alert opens nothing")
		}},
		{file: "mixed.json", code: 200, check: func(t *testing.T, incs []*incident.Incident) {
			require.Len(t, incs, 1)
			require.Len(t, incs[0].Alerts, 2)
			require.Nil(t, incs[0].ResolvedAt, "one alert still fires")
			require.True(t, incs[0].Open())
		}},
		{file: "one.json", code: 200, check: func(t *testing.T, incs []*incident.Incident) {
			require.Len(t, incs, 1)
			require.Len(t, incs[0].Alerts, 1)
		}},
		{file: "truncated.json", code: 200, check: func(t *testing.T, incs []*incident.Incident) {
			require.Len(t, incs, 1)
			require.Equal(t, 7, incs[0].TruncatedAlerts)
		}},
		{file: "unknown_cluster.json", code: 200, check: func(t *testing.T, incs []*incident.Incident) {
			require.Len(t, incs, 1)
			require.Equal(t, "ghost", incs[0].Cluster)
			require.Equal(t, incident.StepClosed, incs[0].Step)
			require.Equal(t, incident.OutcomeUnknownCluster, incs[0].Outcome)
		}},
		{file: "missing_cluster.json", code: 400, errText: `1 of 2 alerts rejected, nothing journaled: alerts[1] (fingerprint "0000000000000009"): no cluster label (looked for cluster)`},
		{file: "missing_alertname.json", code: 400, errText: "no alertname label"},
		{file: "bad_status.json", code: 400, errText: `status "pending" is neither firing nor resolved`},
		{file: "wrong_version.json", code: 400, errText: `unsupported webhook payload version "3": want "4"`},
		{file: "no_alerts.json", code: 400, errText: "notification holds no alerts"},
		{file: "not_json.txt", code: 400, errText: "invalid JSON"},
		{file: "empty.json", code: 400, errText: "empty body"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			env := newEnv(t, testClusters)
			code, body := env.do(t, http.MethodPost, "/webhook", fixture(t, tc.file))
			require.Equal(t, tc.code, code, "body: %s", body)
			require.Equal(t, 1.0, testutil.ToFloat64(env.srv.metrics.webhookRequests.WithLabelValues(fmt.Sprint(tc.code))))
			incs, err := env.j.List(t.Context(), false)
			require.NoError(t, err)
			if tc.code != 200 {
				require.Contains(t, errorOf(t, body), tc.errText)
				require.Empty(t, incs, "nothing is journaled from a rejected notification")
				return
			}
			var res webhookResult
			require.NoError(t, json.Unmarshal(body, &res))
			require.Equal(t, "success", res.Status)
			require.Len(t, res.Incidents, len(incs))
			tc.check(t, incs)
		})
	}
}

func TestWebhookMetrics(t *testing.T) {
	env := newEnv(t, testClusters)
	for _, f := range []string{"firing.json", "resolved.json", "truncated.json", "unknown_cluster.json"} {
		code, body := env.do(t, http.MethodPost, "/webhook", fixture(t, f))
		require.Equal(t, 200, code, "%s: %s", f, body)
	}
	m := env.srv.metrics
	require.Equal(t, 4.0, testutil.ToFloat64(m.alertsReceived.WithLabelValues("ZMY_Quorum_Down", "firing")))
	require.Equal(t, 2.0, testutil.ToFloat64(m.alertsReceived.WithLabelValues("ZMY_Quorum_Down", "resolved")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.unknownCluster))
	require.Equal(t, 1.0, testutil.ToFloat64(m.unknownIncidents), "incidents_total counts the unknown_cluster incident")
	require.Equal(t, 7.0, testutil.ToFloat64(m.truncated))
	require.Equal(t, 4.0, testutil.ToFloat64(m.webhookRequests.WithLabelValues("200")))
	// firing then resolved went to one incident, now resolved; east's truncated resend reopened
	// nothing because the incident was still open.
	n, err := testutil.GatherAndCount(env.reg, "zmy_responder_incidents_open")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, 1.0, gaugeValue(t, env, "zmy_responder_incidents_open"))
	require.NoError(t, testutil.GatherAndCompare(env.reg, strings.NewReader(`
# HELP zmy_responder_incidents_open Incidents not yet closed, by cluster, read from the journal.
# TYPE zmy_responder_incidents_open gauge
zmy_responder_incidents_open{cluster="east"} 1
`), "zmy_responder_incidents_open"))
}

func gaugeValue(t *testing.T, env *testEnv, name string) float64 {
	t.Helper()
	mfs, err := env.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// TestWebhookReplicas: three Alertmanager replicas deliver the same group at once, alerts in
// different orders. One incident, each alert stored once, every delivery counted.
func TestWebhookReplicas(t *testing.T) {
	env := newEnv(t, testClusters)
	var wg sync.WaitGroup
	codes := make([]int, 3)
	for i, f := range []string{"replica_a.json", "replica_b.json", "replica_c.json"} {
		body := fixture(t, f)
		wg.Go(func() { codes[i], _ = env.do(t, http.MethodPost, "/webhook", body) })
	}
	wg.Wait()
	require.Equal(t, []int{200, 200, 200}, codes)
	incs, err := env.j.List(t.Context(), false)
	require.NoError(t, err)
	require.Len(t, incs, 1, "exactly one incident")
	require.Len(t, incs[0].Alerts, 3)
	for _, a := range incs[0].Alerts {
		require.Equal(t, 3, a.Deliveries, a.Fingerprint)
	}
}

func TestWebhookResolvesIncident(t *testing.T) {
	env := newEnv(t, testClusters)
	code, _ := env.do(t, http.MethodPost, "/webhook", fixture(t, "firing.json"))
	require.Equal(t, 200, code)
	code, _ = env.do(t, http.MethodPost, "/webhook", fixture(t, "resolved.json"))
	require.Equal(t, 200, code)
	inc, err := env.j.Get(t.Context(), "inc-000001")
	require.NoError(t, err)
	require.NotNil(t, inc.ResolvedAt)
	require.Len(t, inc.Alerts, 4)
	all, err := env.j.List(t.Context(), false)
	require.NoError(t, err)
	require.Len(t, all, 1)
}

// bigMessage builds a notification of n firing alerts of cluster east, distinct fingerprints.
func bigMessage(n int) []byte {
	msg := webhook.Message{
		Data: &template.Data{
			Receiver: "zmy-responder", Status: "firing", ExternalURL: "http://am-0:9093",
			GroupLabels:  template.KV{"alertname": "ZMY_Quorum_Down", "cluster": "east"},
			CommonLabels: template.KV{"alertname": "ZMY_Quorum_Down", "cluster": "east"},
		},
		Version:  "4",
		GroupKey: `{}:{alertname="ZMY_Quorum_Down", cluster="east"}`,
	}
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range n {
		msg.Alerts = append(msg.Alerts, template.Alert{
			Status: "firing",
			Labels: template.KV{"alertname": "ZMY_Quorum_Down", "cluster": "east", "job": "zmy",
				"instance": fmt.Sprintf("node-%05d:8080", i), "shard": fmt.Sprint(i % 64)},
			Annotations:  template.KV{"summary": "ZMY quorum down"},
			StartsAt:     start,
			GeneratorURL: "http://prometheus:9090/graph?g0.expr=zmy_quorum_up+%3D%3D+0",
			Fingerprint:  fmt.Sprintf("%016x", i+1),
		})
	}
	b, err := json.Marshal(msg)
	if err != nil {
		panic(err)
	}
	return b
}

func TestWebhookTenThousandAlerts(t *testing.T) {
	body := bigMessage(10000)
	t.Logf("10,000-alert payload: %d bytes", len(body))

	// Over the default 1 MiB limit: 413, with a JSON body saying which knob to turn.
	env := newEnv(t, testClusters)
	code, resp := env.do(t, http.MethodPost, "/webhook", body)
	require.Equal(t, http.StatusRequestEntityTooLarge, code)
	require.Contains(t, errorOf(t, resp), "webhook.max_body_bytes")

	env = newEnv(t, "webhook: {max_body_bytes: 16777216}\n"+testClusters)
	start := time.Now()
	code, resp = env.do(t, http.MethodPost, "/webhook", body)
	elapsed := time.Since(start)
	require.Equal(t, 200, code, "%s", resp)
	t.Logf("10,000 alerts answered in %s", elapsed)
	inc, err := env.j.Get(t.Context(), "inc-000001")
	require.NoError(t, err)
	require.Len(t, inc.Alerts, 1000, "webhook.max_alerts_per_incident's default")
	require.Equal(t, 9000, inc.DroppedAlerts)
}

// An incident keeps at most webhook.max_alerts_per_incident alerts: a notification over it is
// answered 200, the rest is counted (on the incident and in incident_alerts_dropped_total), and
// reading the incident stays small however many alerts are posted. An unknown cluster's
// incident has its own, smaller cap.
func TestWebhookAlertCap(t *testing.T) {
	env := newEnv(t, "webhook: {max_body_bytes: 16777216, max_alerts_per_incident: 20, max_alerts_per_unknown_cluster: 5}\n"+testClusters)
	dropped := func(cluster string) float64 {
		return testutil.ToFloat64(env.srv.metrics.alertsDropped.WithLabelValues(cluster))
	}
	require.Zero(t, dropped("east"))
	for n := range 3 {
		code, resp := env.do(t, http.MethodPost, "/webhook", bigMessageFrom(500, n*500, "east"))
		require.Equal(t, http.StatusOK, code, "%s", resp)
		require.JSONEq(t, `{"status":"success","incidents":[{"id":"inc-000001","created":`+fmt.Sprint(n == 0)+`}]}`, string(resp))
	}
	require.Equal(t, 1480.0, dropped("east"))

	code, body := env.do(t, http.MethodGet, "/api/v1/incidents/inc-000001", nil)
	require.Equal(t, http.StatusOK, code)
	var inc incident.Incident
	require.NoError(t, json.Unmarshal(body, &inc))
	require.Len(t, inc.Alerts, 20)
	require.Equal(t, 1480, inc.DroppedAlerts)
	require.Contains(t, string(body), `"dropped_alerts":1480`)
	require.Less(t, len(body), 64<<10, "the incident's JSON does not grow with the alerts posted")
	var noted []string
	for _, e := range inc.Timeline {
		if strings.Contains(e.Message, "dropped_alerts") {
			noted = append(noted, e.Message)
		}
	}
	require.Len(t, noted, 1, "the cap is noted once: %v", noted)

	// A stored alert sent again is still counted on it, not dropped.
	code, _ = env.do(t, http.MethodPost, "/webhook", bigMessageFrom(1, 0, "east"))
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 1480.0, dropped("east"))

	code, resp := env.do(t, http.MethodPost, "/webhook", bigMessageFrom(30, 0, "ghost"))
	require.Equal(t, http.StatusOK, code, "%s", resp)
	require.Equal(t, 25.0, dropped(""), "an unknown cluster is counted under cluster=\"\"")
	ghost, err := env.j.Get(t.Context(), "inc-000002")
	require.NoError(t, err)
	require.Len(t, ghost.Alerts, 5)
	require.Equal(t, 25, ghost.DroppedAlerts)
}

type kickRecorder struct {
	fakeRunbook
	mu    sync.Mutex
	kicks []string
}

func (k *kickRecorder) Kick(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.kicks = append(k.kicks, id)
}

func TestWebhookKicksEveryTouchedIncident(t *testing.T) {
	rb := &kickRecorder{}
	env := newEnv(t, testClusters, func(o *ServerOptions) { o.Runbook = rb })
	code, _ := env.do(t, http.MethodPost, "/webhook", fixture(t, "firing.json"))
	require.Equal(t, 200, code)
	code, _ = env.do(t, http.MethodPost, "/webhook", fixture(t, "unknown_cluster.json"))
	require.Equal(t, 200, code)
	code, _ = env.do(t, http.MethodPost, "/webhook", fixture(t, "replica_b.json"))
	require.Equal(t, 200, code)
	require.Equal(t, []string{"inc-000001", "inc-000001"}, rb.kicks,
		"one kick per open incident per delivery; the unknown cluster's closed incident is not kicked")
}

func TestWebhookJournalFailureIs503(t *testing.T) {
	env := newEnv(t, testClusters)
	require.NoError(t, env.j.Close()) // the disk is gone from under the daemon
	code, body := env.do(t, http.MethodPost, "/webhook", fixture(t, "firing.json"))
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, errorOf(t, body), "journal write failed")
	require.Equal(t, 1.0, testutil.ToFloat64(env.srv.metrics.webhookRequests.WithLabelValues("503")))
}

func TestUnknownLog(t *testing.T) {
	var l unknownLog
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	r, ok := l.report([]string{"a", "b", "c", "d", "e", "f", "g"}, now)
	require.True(t, ok)
	require.Equal(t, unknownReport{names: []string{"a", "b", "c", "d", "e"}, more: 2}, r)
	_, ok = l.report([]string{"a", "g"}, now.Add(time.Minute))
	require.False(t, ok, "named within unknownLogEvery")
	r, ok = l.report([]string{"a", "h"}, now.Add(time.Minute))
	require.True(t, ok)
	require.Equal(t, []string{"h"}, r.names, "only the new one")

	// Lines are capped across clusters; what is held back is counted in the next line.
	for i := 2; i < unknownLogLines; i++ {
		_, ok = l.report([]string{fmt.Sprint("x", i)}, now.Add(time.Minute))
		require.True(t, ok)
	}
	_, ok = l.report([]string{"y1", "y2"}, now.Add(2*time.Minute))
	require.False(t, ok, "the window's lines are spent")
	_, ok = l.report([]string{"y3"}, now.Add(3*time.Minute))
	require.False(t, ok)
	r, ok = l.report([]string{"z"}, now.Add(unknownLogEvery))
	require.True(t, ok, "a new window")
	require.Equal(t, unknownReport{names: []string{"z"}, suppressed: 3}, r)
	r, ok = l.report([]string{"a"}, now.Add(unknownLogEvery))
	require.True(t, ok, "named again once unknownLogEvery has passed")
	require.Zero(t, r.suppressed)
}

// syncBuffer is a log sink for a handler shared by concurrent requests.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// One notification naming 5,000 unknown clusters writes one warning line, not 5,000.
func TestWebhookUnknownClustersLogOnce(t *testing.T) {
	var logs syncBuffer
	env := newEnv(t, "webhook: {max_body_bytes: 16777216}\n"+testClusters, func(o *ServerOptions) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	var labels []template.KV
	for i := range 5000 {
		labels = append(labels, template.KV{"alertname": "ZMY_Quorum_Down", "cluster": fmt.Sprintf("ghost-%04d", i)})
	}
	msg := webhook.Message{Data: &template.Data{Receiver: "zmy-responder", Status: "firing"}, Version: "4", GroupKey: "{}:{}"}
	for i, l := range labels {
		msg.Alerts = append(msg.Alerts, template.Alert{Status: "firing", Labels: l, Fingerprint: fmt.Sprintf("%016x", i+1),
			StartsAt: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)})
	}
	body, err := json.Marshal(msg)
	require.NoError(t, err)
	code, resp := env.do(t, http.MethodPost, "/webhook", body)
	require.Equal(t, http.StatusOK, code, "%s", resp)
	require.Equal(t, 5000.0, testutil.ToFloat64(env.srv.metrics.unknownCluster), "every alert is counted")

	warn := func() []string {
		var out []string
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "not in the configuration") {
				out = append(out, line)
			}
		}
		return out
	}
	lines := warn()
	require.Equal(t, 1, len(lines), "one line for the notification")
	require.Contains(t, lines[0], `clusters=ghost-0000,ghost-0001,ghost-0002,ghost-0003,ghost-0004 more_clusters=4995`)

	// A resend names nobody again.
	code, _ = env.do(t, http.MethodPost, "/webhook", body)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 1, len(warn()))
}

// incidents_open counts every open incident, however many pages of the store they take.
func TestIncidentsOpenCountsEveryPage(t *testing.T) {
	env := newEnv(t, testClusters)
	n := incident.MaxPageLimit + 50
	ds := make([]incident.Delivery, n)
	for i := range ds {
		ds[i] = incident.Delivery{Cluster: "east", Alertname: fmt.Sprintf("ZMY_Alert_%d", i), Known: true,
			Alert: incident.AlertRecord{Fingerprint: "f", Status: "firing", StartsAt: time.Now(), Labels: map[string]string{"cluster": "east"}}}
	}
	res, err := env.j.Ingest(t.Context(), ds)
	require.NoError(t, err)
	require.True(t, res[n-1].Created && res[n-1].Open)
	require.Equal(t, float64(n), gaugeValue(t, env, "zmy_responder_incidents_open"))
}
