package receiver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/remediate"
)

// fakeRunbook stands in for the engine, which another package owns; the tests here are about
// the HTTP mapping, not about what the engine decides. err, when set, is every call's answer.
type fakeRunbook struct {
	err    error
	calls  []string
	paused *remediate.PauseState
}

func (f *fakeRunbook) Kick(string) {}

func (f *fakeRunbook) record(call string, a incident.Approval) error {
	f.calls = append(f.calls, fmt.Sprintf("%s by=%s reason=%s", call, a.By, a.Reason))
	return f.err
}

func (f *fakeRunbook) Approve(_ context.Context, id string, a incident.Approval) (*incident.Incident, error) {
	if err := f.record("approve "+id, a); err != nil {
		return nil, err
	}
	return &incident.Incident{ID: id, Cluster: "east", Step: incident.StepAwaitingRecovery, Approvals: []incident.Approval{a},
		Timeline: []incident.Event{{At: a.At, Step: incident.StepAwaitingRecovery, Message: "approved by " + a.By + ": " + a.Reason}}}, nil
}

func (f *fakeRunbook) Abort(_ context.Context, id string, a incident.Approval) (*incident.Incident, error) {
	if err := f.record("abort "+id, a); err != nil {
		return nil, err
	}
	return &incident.Incident{ID: id, Cluster: "east", Step: incident.StepClosed, Outcome: incident.OutcomeAborted, Abort: &a,
		Reason: "aborted by " + a.By + "; every node is left suspended"}, nil
}

func (f *fakeRunbook) Ack(_ context.Context, id string, a incident.Approval) (*incident.Incident, error) {
	if err := f.record("ack "+id, a); err != nil {
		return nil, err
	}
	return &incident.Incident{ID: id, Cluster: "east", Step: incident.StepAwaitingRecovery,
		Acks: []incident.Ack{{By: a.By, At: a.At, Comment: a.Reason, Source: "api"}}}, nil
}

func (f *fakeRunbook) Retry(_ context.Context, id string, a incident.Approval) (*incident.Incident, error) {
	if err := f.record("retry "+id, a); err != nil {
		return nil, err
	}
	return &incident.Incident{ID: "inc-000099", Cluster: "east", Step: incident.StepReceived, RetryOf: id}, nil
}

func (f *fakeRunbook) Clusters(context.Context) ([]remediate.ClusterStatus, error) {
	return []remediate.ClusterStatus{{Name: "east", Breaker: "closed", RequireApproval: true, Paused: f.paused}}, f.err
}

func (f *fakeRunbook) Pause(_ context.Context, c string, a incident.Approval) error {
	if err := f.record("pause "+c, a); err != nil {
		return err
	}
	f.paused = &remediate.PauseState{By: a.By, Reason: a.Reason, At: a.At}
	return nil
}

func (f *fakeRunbook) Unpause(_ context.Context, c string, a incident.Approval) error {
	if err := f.record("unpause "+c, a); err != nil {
		return err
	}
	f.paused = nil
	return nil
}

func (f *fakeRunbook) Plan(_ context.Context, c string) (*remediate.PlanReport, error) {
	return &remediate.PlanReport{Cluster: c, Steps: []string{"suspend"}}, f.err
}

func TestIncidentReadAPI(t *testing.T) {
	env := newEnv(t, testClusters)
	for _, f := range []string{"firing.json", "unknown_cluster.json"} {
		code, _ := env.do(t, http.MethodPost, "/webhook", fixture(t, f))
		require.Equal(t, 200, code)
	}
	var list struct{ Incidents []incident.Incident }
	code, body := env.do(t, http.MethodGet, "/api/v1/incidents", nil)
	require.Equal(t, 200, code)
	require.NoError(t, json.Unmarshal(body, &list))
	require.Len(t, list.Incidents, 2)
	require.Equal(t, "inc-000002", list.Incidents[0].ID, "newest first")

	code, body = env.do(t, http.MethodGet, "/api/v1/incidents?state=open", nil)
	require.Equal(t, 200, code)
	require.NoError(t, json.Unmarshal(body, &list))
	require.Len(t, list.Incidents, 1)
	require.Equal(t, "inc-000001", list.Incidents[0].ID)

	code, body = env.do(t, http.MethodGet, "/api/v1/incidents?state=closed-ish", nil)
	require.Equal(t, 400, code)
	require.Contains(t, errorOf(t, body), "want open, closed or all")

	// Summaries only: the list carries no alerts (the detail has them).
	var raw struct{ Incidents []map[string]any }
	code, body = env.do(t, http.MethodGet, "/api/v1/incidents", nil)
	require.Equal(t, 200, code)
	require.NoError(t, json.Unmarshal(body, &raw))
	require.NotContains(t, raw.Incidents[0], "alerts")
	require.NotContains(t, raw.Incidents[0], "timeline")
	require.Equal(t, "unknown_cluster", raw.Incidents[0]["outcome"])

	// Pages: limit and cursor; the last page has no next_cursor.
	var page struct {
		Incidents  []incident.Summary
		NextCursor string `json:"next_cursor"`
	}
	code, body = env.do(t, http.MethodGet, "/api/v1/incidents?limit=1", nil)
	require.Equal(t, 200, code)
	require.NoError(t, json.Unmarshal(body, &page))
	require.Len(t, page.Incidents, 1)
	require.Equal(t, "inc-000002", page.Incidents[0].ID)
	require.Equal(t, "inc-000002", page.NextCursor)
	code, body = env.do(t, http.MethodGet, "/api/v1/incidents?limit=1&cursor="+page.NextCursor, nil)
	require.Equal(t, 200, code)
	page.NextCursor = ""
	require.NoError(t, json.Unmarshal(body, &page))
	require.Equal(t, "inc-000001", page.Incidents[0].ID)
	require.Empty(t, page.NextCursor)
	code, body = env.do(t, http.MethodGet, "/api/v1/incidents?state=closed&cluster=nowhere", nil)
	require.Equal(t, 200, code)
	require.JSONEq(t, `{"incidents":[]}`, string(body))
	for q, want := range map[string]string{
		"limit=0":      "want 1 to 100",
		"limit=101":    "want 1 to 100",
		"limit=ten":    "want 1 to 100",
		"cursor=bogus": "cursor",
	} {
		code, body = env.do(t, http.MethodGet, "/api/v1/incidents?"+q, nil)
		require.Equal(t, 400, code, q)
		require.Contains(t, errorOf(t, body), want, q)
	}

	var inc incident.Incident
	code, body = env.do(t, http.MethodGet, "/api/v1/incidents/inc-000001", nil)
	require.Equal(t, 200, code)
	require.NoError(t, json.Unmarshal(body, &inc))
	require.Equal(t, "east", inc.Cluster)
	require.Len(t, inc.Alerts, 2)

	for _, id := range []string{"inc-000099", "bogus"} {
		code, body = env.do(t, http.MethodGet, "/api/v1/incidents/"+id, nil)
		require.Equal(t, 404, code, id)
		require.Contains(t, errorOf(t, body), "not found")
	}
	code, body = env.do(t, http.MethodGet, "/api/v1/nothing-here", nil)
	require.Equal(t, 404, code)
	errorOf(t, body)
	code, body = env.do(t, http.MethodDelete, "/webhook", nil)
	require.Equal(t, 405, code)
	errorOf(t, body)
}

func TestRunbookAPI(t *testing.T) {
	rb := &fakeRunbook{}
	env := newEnv(t, testClusters, func(o *ServerOptions) { o.Runbook = rb })
	ok := []byte(`{"by":"alice","reason":"network converged, etcd healthy"}`)

	// Decisions answer a short summary, not the incident.
	code, body := env.do(t, http.MethodPost, "/api/v1/incidents/inc-000001/approve", ok)
	require.Equal(t, 200, code, "%s", body)
	require.JSONEq(t, `{"id":"inc-000001","cluster":"east","step":"awaiting_recovery",
		"message":"approved by alice: network converged, etcd healthy"}`, string(body))
	code, body = env.do(t, http.MethodPost, "/api/v1/incidents/inc-000001/abort", ok)
	require.Equal(t, 200, code, "%s", body)
	require.JSONEq(t, `{"id":"inc-000001","cluster":"east","step":"closed","outcome":"aborted",
		"message":"aborted by alice; every node is left suspended"}`, string(body))
	code, body = env.do(t, http.MethodPost, "/api/v1/clusters/east/pause", ok)
	require.Equal(t, 200, code, "%s", body)
	require.JSONEq(t, `{"cluster":"east","paused":true,"message":"paused by alice: network converged, etcd healthy"}`, string(body))
	code, body = env.do(t, http.MethodPost, "/api/v1/clusters/east/unpause", ok)
	require.Equal(t, 200, code, "%s", body)
	require.JSONEq(t, `{"cluster":"east","paused":false,"message":"unpaused by alice: network converged, etcd healthy"}`, string(body))
	require.Equal(t, []string{
		"approve inc-000001 by=alice reason=network converged, etcd healthy",
		"abort inc-000001 by=alice reason=network converged, etcd healthy",
		"pause east by=alice reason=network converged, etcd healthy",
		"unpause east by=alice reason=network converged, etcd healthy",
	}, rb.calls)

	code, body = env.do(t, http.MethodGet, "/api/v1/clusters", nil)
	require.Equal(t, 200, code)
	require.JSONEq(t, `[{"name":"east","breaker":"closed","breaker_state":0,"dry_run":false,"require_approval":true}]`, string(body))
	code, body = env.do(t, http.MethodGet, "/api/v1/clusters/east/plan", nil)
	require.Equal(t, 200, code)
	require.JSONEq(t, `{"cluster":"east","steps":["suspend"]}`, string(body))

	// Bad bodies: 400 with a JSON error, the engine never called.
	rb.calls = nil
	for body, want := range map[string]string{
		``:                               "empty body",
		`{"by":"alice"}`:                 `"reason" required`,
		`{"reason":"why"}`:               `"by" required`,
		`{"by":" ","reason":""}`:         `"by" and "reason" required`,
		`{"by":"a","reason":"r","x":1}`:  "unknown field",
		`not json`:                       "invalid JSON body",
		`{"by":"a","reason":"r"} trail`:  "", // trailing data after one object is tolerated
		`{"by":"alice","reason":"ok"}  `: "",
	} {
		code, resp := env.do(t, http.MethodPost, "/api/v1/incidents/inc-000001/approve", []byte(body))
		if want == "" {
			require.Equal(t, 200, code, "%q", body)
			continue
		}
		require.Equal(t, 400, code, "%q", body)
		require.Contains(t, errorOf(t, resp), want, "%q", body)
	}
	require.Len(t, rb.calls, 2)

	// Sentinel errors map onto status codes.
	for err, want := range map[error]int{
		incident.ErrNotFound:                            404,
		fmt.Errorf("x: %w", incident.ErrUnknownCluster): 404,
		fmt.Errorf("closed: %w", incident.ErrConflict):  409,
		context.DeadlineExceeded:                        504,
		fmt.Errorf("engine exploded"):                   500,
	} {
		rb.err = err
		code, resp := env.do(t, http.MethodPost, "/api/v1/incidents/inc-000001/approve", ok)
		require.Equal(t, want, code, "%v", err)
		require.Contains(t, errorOf(t, resp), err.Error())
		code, _ = env.do(t, http.MethodPost, "/api/v1/clusters/east/pause", ok)
		require.Equal(t, want, code, "%v", err)
	}
}

func TestRunbookAPIWithoutEngine(t *testing.T) {
	env := newEnv(t, testClusters)
	ok := []byte(`{"by":"alice","reason":"r"}`)
	for _, r := range []struct{ method, path string }{
		{http.MethodPost, "/api/v1/incidents/inc-000001/approve"},
		{http.MethodPost, "/api/v1/incidents/inc-000001/abort"},
		{http.MethodGet, "/api/v1/clusters"},
		{http.MethodPost, "/api/v1/clusters/east/pause"},
		{http.MethodPost, "/api/v1/clusters/east/unpause"},
		{http.MethodGet, "/api/v1/clusters/east/plan"},
	} {
		code, body := env.do(t, r.method, r.path, ok)
		require.Equal(t, 503, code, r.path)
		require.Contains(t, errorOf(t, body), "runbook engine is not running")
	}
}

func TestOperationalEndpoints(t *testing.T) {
	env := newEnv(t, testClusters)
	code, body := env.do(t, http.MethodGet, "/healthz", nil)
	require.Equal(t, 200, code)
	require.JSONEq(t, `{"status":"ok"}`, string(body))
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		code, _ = env.do(t, m, "/-/healthy", nil)
		require.Equal(t, 200, code, m)
		code, _ = env.do(t, m, "/-/ready", nil)
		require.Equal(t, 200, code, m)
	}
	env.srv.SetReady(false)
	code, _ = env.do(t, http.MethodHead, "/-/ready", nil)
	require.Equal(t, 503, code)
	code, body = env.do(t, http.MethodGet, "/metrics", nil)
	require.Equal(t, 200, code)
	for _, series := range []string{
		`zmy_responder_webhook_requests_total{code="200"} 0`,
		`zmy_responder_webhook_requests_total{code="503"} 0`,
		`zmy_responder_alerts_received_total{alertname="ZMY_Quorum_Down",status="firing"} 0`,
		`zmy_responder_incidents_open{cluster="east"} 0`,
		`zmy_responder_incidents_total{cluster="",outcome="unknown_cluster"} 0`,
		`zmy_responder_unknown_cluster_alerts_total 0`,
	} {
		require.Contains(t, string(body), series)
	}
	// POST /-/reload without Run behind it.
	code, body = env.do(t, http.MethodPost, "/-/reload", nil)
	require.Equal(t, 503, code)
	errorOf(t, body)
}
