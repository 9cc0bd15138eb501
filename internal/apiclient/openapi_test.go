package apiclient_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/apiclient"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/testenv"
	"github.com/zmyorg/zmy-responder/receiver"
	"github.com/zmyorg/zmy-responder/remediate"
)

// loadOpenAPI parses and validates an OpenAPI description, with its server set to base.
func loadOpenAPI(t *testing.T, raw []byte, base string) (*openapi3.T, routers.Router) {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(loader.Context), "openapi.yaml is not a valid OpenAPI 3 description")
	doc.Servers = openapi3.Servers{{URL: base + "/api/v1"}}
	router, err := legacy.NewRouter(doc)
	require.NoError(t, err)
	return doc, router
}

// validating is an http.RoundTripper that checks every answer of the real daemon against the
// OpenAPI description (status documented, body matching its schema), and every request the
// daemon accepted (2xx) too. It records which operations answered which statuses.
type validating struct {
	t      *testing.T
	router routers.Router
	mu     sync.Mutex
	seen   map[string]map[int]bool // operationId → statuses
}

func (v *validating) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))

	route, params, err := v.router.FindRoute(req)
	if err != nil {
		v.t.Errorf("%s %s is not in openapi.yaml: %v", req.Method, req.URL.Path, err)
		return resp, nil
	}
	vreq := req.Clone(context.Background())
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}}
	if resp.StatusCode/100 == 2 {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			v.t.Errorf("%s %s: the daemon accepted a request openapi.yaml does not allow: %v", req.Method, req.URL, err)
		}
	}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(body)), Options: in.Options,
	})
	if err != nil {
		v.t.Errorf("%s %s answered %d, not as openapi.yaml says: %v\nbody: %.600s", req.Method, req.URL, resp.StatusCode, err, body)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	op := route.Operation.OperationID
	if v.seen[op] == nil {
		v.seen[op] = map[int]bool{}
	}
	v.seen[op][resp.StatusCode] = true
	return resp, nil
}

// TestOpenAPIAgainstDaemon drives a real daemon on a simulated cluster through a whole incident
// (partition, containment, gate, approval, recovery) and the error paths, and validates every
// request it accepted and every answer against openapi.yaml as the daemon serves it.
func TestOpenAPIAgainstDaemon(t *testing.T) {
	pwFile := t.TempDir() + "/pw"
	require.NoError(t, writeFile(pwFile, "s3cret\n"))
	st := startStack(t, true, func(cfg map[string]any) {
		cfg["api"].(map[string]any)["auth"] = map[string]any{"basic_auth": map[string]any{"username": "sre", "password_file": pwFile}}
	})
	ctx := t.Context()
	plain, err := apiclient.New(st.ResponderURL, apiclient.Options{})
	require.NoError(t, err)
	raw, err := plain.OpenAPI(ctx)
	require.NoError(t, err)
	require.Equal(t, receiver.OpenAPI, raw, "the daemon serves the embedded file")
	doc, router := loadOpenAPI(t, raw, st.ResponderURL)
	v := &validating{t: t, router: router, seen: map[string]map[int]bool{}}
	hc := &http.Client{Transport: v, Timeout: 30 * time.Second}
	c, err := apiclient.New(st.ResponderURL, apiclient.Options{HTTPClient: hc, BasicUser: "sre", BasicPassword: "s3cret"})
	require.NoError(t, err)
	anon, err := apiclient.New(st.ResponderURL, apiclient.Options{HTTPClient: hc})
	require.NoError(t, err)
	_, err = c.OpenAPI(ctx)
	require.NoError(t, err)

	// A healthy cluster: its plan, its clusters entry.
	plan, err := c.Plan(ctx, "demo")
	require.NoError(t, err)
	require.NotEmpty(t, plan.Steps)
	_, err = anon.Plan(ctx, "demo")
	require.True(t, apiclient.IsStatus(err, 401), "%v", err)
	noPlan, err := c.Plan(ctx, "nowhere")
	require.True(t, apiclient.IsStatus(err, 404), "%v", err)
	require.Nil(t, noPlan, "an error comes with no half-filled answer")
	cs, err := c.Clusters(ctx)
	require.NoError(t, err)
	require.Equal(t, "demo", cs[0].Name)

	// A partition, the alert, the runbook up to the gate.
	st.Partition(t, "n1,n2,n3/n4,n5", 8)
	st.Alert(t, "demo")
	var id string
	waitStep(t, c, &id, incident.StepAwaitingRecovery)
	inc, err := c.Incident(ctx, id)
	require.NoError(t, err)
	require.Equal(t, incident.VerdictConfirmed, inc.Verdict.Kind)
	require.NotEmpty(t, inc.Commands)
	require.NotEmpty(t, inc.Silences, "a real Alertmanager silenced the cluster")

	_, err = c.Decide(ctx, id, "approve", apiclient.Decision{By: "alice"})
	require.True(t, apiclient.IsStatus(err, 400), "%v", err)
	_, err = anon.Decide(ctx, id, "approve", apiclient.Decision{By: "alice", Reason: "r"})
	require.True(t, apiclient.IsStatus(err, 401), "%v", err)
	noResult, err := c.Decide(ctx, "inc-999999", "approve", apiclient.Decision{By: "alice", Reason: "r"})
	require.True(t, apiclient.IsStatus(err, 404), "%v", err)
	require.Nil(t, noResult)
	res, err := c.Decide(ctx, id, "ack", apiclient.Decision{By: "dave"}) // the reason is an optional comment
	require.NoError(t, err)
	require.Equal(t, id, res.ID)
	_, err = c.Decide(ctx, id, "retry", apiclient.Decision{By: "dave", Reason: "r"})
	require.True(t, apiclient.IsStatus(err, 409), "an open incident is not retried: %v", err)
	st.Inject(t, "heal")
	res, err = c.Decide(ctx, id, "approve", apiclient.Decision{By: "alice", Reason: "network team confirmed"})
	require.NoError(t, err)
	require.Equal(t, id, res.ID)
	require.Contains(t, res.Message, "approved by alice")
	waitStep(t, c, &id, incident.StepClosed)
	inc, err = c.Incident(ctx, id)
	require.NoError(t, err)
	require.Equal(t, incident.OutcomeRecovered, inc.Outcome, inc.Reason)
	st.RequireNoViolations(t)

	// Closed: decisions conflict.
	_, err = c.Decide(ctx, id, "approve", apiclient.Decision{By: "alice", Reason: "again"})
	require.True(t, apiclient.IsStatus(err, 409), "%v", err)
	_, err = c.Decide(ctx, id, "abort", apiclient.Decision{By: "alice", Reason: "too late"})
	require.True(t, apiclient.IsStatus(err, 409), "%v", err)

	// A second incident: refused while the cluster is paused, retried (refused again: still
	// paused), re-evaluated by the unpause, then aborted at the gate.
	st.Partition(t, "n1,n2,n3/n4,n5", 8)
	_, err = c.SetPaused(ctx, "demo", true, apiclient.Decision{By: "bob", Reason: "maintenance"})
	require.NoError(t, err)
	cs, err = c.Clusters(ctx)
	require.NoError(t, err)
	require.Equal(t, "bob", cs[0].Paused.By)
	noCluster, err := c.SetPaused(ctx, "nowhere", true, apiclient.Decision{By: "bob", Reason: "x"})
	require.True(t, apiclient.IsStatus(err, 404), "%v", err)
	require.Nil(t, noCluster)
	st.Alert(t, "demo")
	refused := newestClosed(t, c, incident.OutcomePaused, id)
	res, err = c.Decide(ctx, refused, "retry", apiclient.Decision{By: "bob", Reason: "try again"})
	require.NoError(t, err)
	require.NotEqual(t, refused, res.ID, "the answer is the new incident")
	refused = newestClosed(t, c, incident.OutcomePaused, refused)
	_, err = c.SetPaused(ctx, "demo", false, apiclient.Decision{By: "bob", Reason: "done"})
	require.NoError(t, err)
	second := ""
	waitStep(t, c, &second, incident.StepAwaitingRecovery)
	require.NotEqual(t, id, second)
	res, err = c.Decide(ctx, second, "abort", apiclient.Decision{By: "carol", Reason: "finishing by hand"})
	require.NoError(t, err)
	require.Equal(t, incident.OutcomeAborted, res.Outcome)
	st.Inject(t, "heal")

	// Pages.
	p, err := c.Incidents(ctx, apiclient.ListOptions{Limit: 1})
	require.NoError(t, err)
	require.Equal(t, second, p.Incidents[0].ID)
	require.NotEmpty(t, p.NextCursor)
	p, err = c.Incidents(ctx, apiclient.ListOptions{Limit: 1, Cursor: p.NextCursor, State: "closed", Cluster: "demo"})
	require.NoError(t, err)
	require.Equal(t, refused, p.Incidents[0].ID, "the next older closed one: the retry refused while paused")
	noPage, err := c.Incidents(ctx, apiclient.ListOptions{State: "sideways"})
	require.True(t, apiclient.IsStatus(err, 400), "%v", err)
	require.Nil(t, noPage)
	noIncident, err := c.Incident(ctx, "inc-nope")
	require.True(t, apiclient.IsStatus(err, 404), "%v", err)
	require.Nil(t, noIncident)

	// The plan's budget: a few per cluster, then 429.
	for {
		_, err = c.Plan(ctx, "demo")
		if err != nil {
			break
		}
	}
	require.True(t, apiclient.IsStatus(err, 429), "%v", err)

	// Every operation was exercised with success.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ok := false
			for code := range v.seen[op.OperationID] {
				ok = ok || code/100 == 2
			}
			require.True(t, ok, "%s %s (%s) never answered 2xx in this test", method, path, op.OperationID)
		}
	}
}

// waitStep waits up to 60s for the newest incident (or *id, once known) to reach step.
// newestClosed waits for the newest incident of demo to be another than after, closed with
// outcome, and returns it.
func newestClosed(t *testing.T, c *apiclient.Client, outcome incident.Outcome, after string) string {
	t.Helper()
	var id string
	testenv.Eventually(t, 60*time.Second, "a new incident closed "+string(outcome), func() (bool, string) {
		p, err := c.Incidents(t.Context(), apiclient.ListOptions{State: "all", Cluster: "demo", Limit: 1})
		if err != nil || len(p.Incidents) == 0 {
			return false, fmt.Sprint(err)
		}
		s := p.Incidents[0]
		id = s.ID
		return s.ID != after && !s.Open() && s.Outcome == outcome, fmt.Sprintf("%s %s %s", s.ID, s.Step, s.Outcome)
	})
	return id
}

func waitStep(t *testing.T, c *apiclient.Client, id *string, step incident.Step) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		p, err := c.Incidents(t.Context(), apiclient.ListOptions{State: "all", Cluster: "demo", Limit: 5})
		require.NoError(t, err)
		for _, s := range p.Incidents {
			if *id == "" && s.Open() {
				*id = s.ID
			}
			if s.ID == *id && s.Step == step {
				return
			}
			if s.ID == *id && !s.Open() {
				require.Equal(t, step, s.Step, "%s closed %s: %s", s.ID, s.Outcome, s.Reason)
			}
		}
		require.True(t, time.Now().Before(deadline), "incident %q did not reach %s in 60s: %+v", *id, step, p.Incidents)
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTypesDescribed: every field the client (and so zmyrtool) reads, and every field of the
// types the daemon answers with and the console renders, is a property of its schema in
// openapi.yaml.
func TestTypesDescribed(t *testing.T) {
	doc, _ := loadOpenAPI(t, receiver.OpenAPI, "http://127.0.0.1")
	schemas := doc.Components.Schemas
	for _, c := range []struct {
		name string
		typ  reflect.Type
	}{
		{"Cluster", reflect.TypeFor[remediate.ClusterStatus]()},
		{"Plan", reflect.TypeFor[remediate.PlanReport]()},
	} {
		for _, missing := range undescribed(c.typ, schemas[c.name].Value, c.name) {
			t.Errorf("%s is not in openapi.yaml", missing)
		}
	}
	for name, typ := range map[string]reflect.Type{
		"IncidentList":    reflect.TypeFor[apiclient.IncidentPage](),
		"Incident":        reflect.TypeFor[incident.Incident](),
		"ActionResult":    reflect.TypeFor[apiclient.ActionResult](),
		"ClusterResult":   reflect.TypeFor[apiclient.ClusterResult](),
		"Cluster":         reflect.TypeFor[apiclient.Cluster](),
		"Plan":            reflect.TypeFor[apiclient.Plan](),
		"Decision":        reflect.TypeFor[apiclient.Decision](),
		"IncidentSummary": reflect.TypeFor[incident.Summary](),
	} {
		require.Contains(t, schemas, name)
		for _, missing := range undescribed(typ, schemas[name].Value, name) {
			t.Errorf("%s is not in openapi.yaml", missing)
		}
	}
}

// undescribed lists the JSON fields of typ (recursively, through the schemas the properties
// refer to) that schema does not have.
func undescribed(typ reflect.Type, schema *openapi3.Schema, at string) []string {
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
		typ = typ.Elem()
		if schema.Type.Is("array") && schema.Items != nil {
			schema = schema.Items.Value
		}
	}
	if typ.Kind() != reflect.Struct || typ == reflect.TypeFor[time.Time]() {
		return nil
	}
	var out []string
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		prop, ok := schema.Properties[name]
		if !ok {
			out = append(out, fmt.Sprintf("%s.%s (Go %s.%s)", at, name, typ.Name(), f.Name))
			continue
		}
		out = append(out, undescribed(f.Type, prop.Value, at+"."+name)...)
	}
	return out
}
