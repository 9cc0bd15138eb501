package receiver

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// consoleIncident journals a confirmed incident at awaiting_recovery, with evidence for each SOP
// condition, commands, a silence and the gate's last reading.
func consoleIncident(t *testing.T, env *testEnv) string {
	t.Helper()
	ctx := t.Context()
	code, _ := env.do(t, http.MethodPost, "/webhook", fixture(t, "one.json"))
	require.Equal(t, 200, code)
	at := time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)
	_, err := env.j.Update(ctx, "inc-000001", func(inc *incident.Incident) error {
		inc.Step = incident.StepAwaitingRecovery
		deadline := time.Now().Add(29 * time.Minute)
		inc.StepEnteredAt, inc.StepDeadline = at, &deadline
		inc.Verdict = &incident.Verdict{Kind: incident.VerdictConfirmed, Reason: "n1,n2,n3 | n4,n5 split",
			Conditions:     map[incident.Condition]bool{incident.CondControl: true, incident.CondData: true, incident.CondNetwork: true},
			PartitionScore: 1, Groups: [][]string{{"n1", "n2", "n3"}, {"n4", "n5"}}, At: at,
			Evidence: []incident.Evidence{
				{Node: "n1", Probe: "control", OK: true, Value: "QUORUM_LOST leader=n1", Supports: []incident.Condition{incident.CondControl}},
				{Node: "n1", Probe: "data", OK: true, Value: "shard 1 applied 1042", Supports: []incident.Condition{incident.CondData}},
				{Node: "n4", Probe: "tcp", OK: false, Error: "n1:7070 unreachable <script>alert(1)</script>", Supports: []incident.Condition{incident.CondNetwork}},
				{Node: "n4", Probe: "clock", OK: true, Value: "offset 3ms", Supports: []incident.Condition{incident.CondClock}},
			}}
		inc.Plan = []string{"contain: on all 5 nodes in parallel"}
		inc.Commands = []incident.Command{
			{Node: "n1", Args: []string{"zmyctl", "raft", "suspend", "--force"}, Step: incident.StepContaining, Started: at, Duration: 12 * time.Millisecond},
			{Node: "n4", Args: []string{"zmyctl", "raft", "suspend", "--force"}, Step: incident.StepContaining, Started: at, Duration: 2 * time.Second, Exit: 3, Error: "node unreachable"},
		}
		inc.Silences = []incident.Silence{{ID: "5ab1-77", Action: "created", At: at, EndsAt: at.Add(10 * time.Minute)}}
		inc.Timeline = append(inc.Timeline, incident.Event{At: at, Step: incident.StepAwaitingRecovery,
			Message: "gate closed: network not converged: partition_score 1 > 0; waiting for a human approval"})
		return nil
	})
	require.NoError(t, err)
	return "inc-000001"
}

// browser is an HTTP client with cookies, as a browser would be.
func browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	return send(t, c, req, hdr)
}

func postForm(t *testing.T, c *http.Client, u string, form url.Values, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return send(t, c, req, hdr)
}

// send does req with the "Name: value" headers and returns the status, body and headers.
func send(t *testing.T, c *http.Client, req *http.Request, hdr []string) (int, string, http.Header) {
	t.Helper()
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body), resp.Header
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func TestConsoleIncidentPage(t *testing.T) {
	rb := &fakeRunbook{}
	env := newEnv(t, "web: {grafana_url: \"https://grafana.example.com\"}\n"+testClusters, func(o *ServerOptions) { o.Runbook = rb })
	id := consoleIncident(t, env)
	c := browser(t)

	code, page, hdr := get(t, c, env.url+"/incidents/"+id)
	require.Equal(t, 200, code, page)
	require.Contains(t, hdr.Get("Content-Security-Policy"), "script-src 'self'")
	require.Equal(t, "no-store", hdr.Get("Cache-Control"))
	for _, want := range []string{
		`<span class="step waiting" id="step">awaiting_recovery</span>`,
		`id="verdict">confirmed`,
		`Control plane: QUORUM_LOST`, `Data plane:`, `Network: peers unreachable`,
		`QUORUM_LOST leader=n1`, `shard 1 applied 1042`,
		`&lt;script&gt;alert(1)&lt;/script&gt;`, // evidence is escaped
		`network not converged: partition_score 1 &gt; 0; waiting for a human approval`,
		`zmyctl raft suspend --force`, `node unreachable`, `2s`,
		// The silence links to the Alertmanager that sent the alert (one.json's externalURL).
		`href="http://am-0:9093/#/silences/5ab1-77"`,
		`https://grafana.example.com/d/zmy-responder/?var-cluster=east&amp;from=`,
		`action="/incidents/inc-000001/approve"`, `action="/incidents/inc-000001/abort"`,
		`data-refresh="/incidents/inc-000001"`,
		`Other evidence (clock, liveness)`, `offset 3ms`,
		`<span id="deadline">in 2`, // 29m less the test's time
	} {
		require.Contains(t, page, want)
	}
	require.NotContains(t, page, "<script>alert(1)")
	require.Regexp(t, `(?s)<h3 class="node">n1</h3>.*12ms.*<h3 class="node">n4</h3>.*<td>3</td>`, page, "commands per node with exit and duration")

	// The index and the cluster page list it.
	code, page, _ = get(t, c, env.url+"/")
	require.Equal(t, 200, code, page)
	require.Contains(t, page, `<a href="/incidents/inc-000001">inc-000001</a>`)
	code, page, _ = get(t, c, env.url+"/clusters")
	require.Equal(t, 200, code, page)
	require.Contains(t, page, `action="/clusters/east/pause"`)
	require.NotContains(t, page, `action="/clusters/east/unpause"`, "east is not paused")

	code, page, _ = get(t, c, env.url+"/incidents/inc-000404")
	require.Equal(t, 404, code)
	require.Contains(t, page, "not found")
	code, body, hdr := get(t, c, env.url+"/static/console.js")
	require.Equal(t, 200, code)
	require.Contains(t, body, "data-live")
	require.Contains(t, hdr.Get("Content-Type"), "javascript")
}

func TestConsoleForms(t *testing.T) {
	rb := &fakeRunbook{}
	env := newEnv(t, testClusters, func(o *ServerOptions) { o.Runbook = rb })
	id := consoleIncident(t, env)
	c := browser(t)
	_, page, _ := get(t, c, env.url+"/incidents/"+id)
	m := csrfField.FindStringSubmatch(page)
	require.NotNil(t, m, "a CSRF token in the form")
	token := m[1]
	u := env.url + "/incidents/" + id + "/approve"

	// No reason: refused, nothing reaches the engine, what was typed is kept.
	code, page, _ := postForm(t, c, u, url.Values{"csrf": {token}, "by": {"alice"}, "reason": {"  "}})
	require.Equal(t, 400, code)
	require.Contains(t, page, "Approve recovery refused: a reason is required")
	require.Contains(t, page, `name="by" value="alice"`)
	// No token, another browser's token: refused.
	code, page, _ = postForm(t, c, u, url.Values{"by": {"alice"}, "reason": {"checked"}})
	require.Equal(t, 403, code)
	require.Contains(t, page, "security token is missing or stale")
	code, _, _ = postForm(t, browser(t), u, url.Values{"csrf": {token}, "by": {"alice"}, "reason": {"checked"}})
	require.Equal(t, 403, code)
	require.Empty(t, rb.calls)

	// With a reason: done, redirected to the incident, the result shown once.
	code, _, hdr := postForm(t, c, u, url.Values{"csrf": {token}, "by": {"alice"}, "reason": {"network team confirmed"}})
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, "/incidents/"+id, hdr.Get("Location"))
	require.Equal(t, []string{"approve inc-000001 by=alice reason=network team confirmed"}, rb.calls)
	_, page, _ = get(t, c, env.url+"/incidents/"+id)
	require.Contains(t, page, `class="flash ok"`)
	require.Contains(t, page, "Approve recovery: done. inc-000001 is at step awaiting_recovery. approved by alice: network team confirmed")
	_, page, _ = get(t, c, env.url+"/incidents/"+id)
	require.NotContains(t, page, `class="flash ok"`, "shown once")

	// An engine refusal is shown with its status.
	rb.err = context.DeadlineExceeded
	code, page, _ = postForm(t, c, env.url+"/incidents/"+id+"/abort", url.Values{"csrf": {token}, "by": {"alice"}, "reason": {"stop"}})
	require.Equal(t, 504, code)
	require.Contains(t, page, "Abort refused: context deadline exceeded")
	rb.err = nil

	// Pause from the clusters page.
	code, _, hdr = postForm(t, c, env.url+"/clusters/east/pause", url.Values{"csrf": {token}, "by": {"bob"}, "reason": {"maintenance"}})
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, "/clusters", hdr.Get("Location"))
	_, page, _ = get(t, c, env.url+"/clusters")
	require.Contains(t, page, "Pause east: done. paused by bob: maintenance")
	code, page, _ = postForm(t, c, env.url+"/clusters/east/unpause", url.Values{"csrf": {token}, "by": {"bob"}})
	require.Equal(t, 400, code)
	require.Contains(t, page, "Unpause east refused: a reason is required")
}

// TestConsoleAuth: with api.auth the pages ask for the same credentials as the API's mutations,
// and the forms are prefilled with the authenticated user; the password never appears.
func TestConsoleAuth(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "pw", "s3cret")
	rb := &fakeRunbook{}
	env := newEnv(t, "api: {auth: {basic_auth: {username: sre, password_file: "+pw+"}}}\n"+testClusters, func(o *ServerOptions) { o.Runbook = rb })
	id := consoleIncident(t, env)
	c := browser(t)
	for _, p := range []string{"/", "/clusters", "/incidents/" + id} {
		code, _, hdr := get(t, c, env.url+p)
		require.Equal(t, 401, code, p)
		require.Equal(t, `Basic realm="zmy-responder"`, hdr.Get("WWW-Authenticate"))
	}
	auth := basic("sre", "s3cret")
	code, page, _ := get(t, c, env.url+"/incidents/"+id, auth)
	require.Equal(t, 200, code)
	require.Contains(t, page, `signed in as <b>sre</b>`)
	require.Contains(t, page, `name="by" value="sre"`)
	require.NotContains(t, page, "s3cret")
	token := csrfField.FindStringSubmatch(page)[1]
	code, _, _ = postForm(t, c, env.url+"/incidents/"+id+"/approve", url.Values{"csrf": {token}, "by": {"sre"}, "reason": {"ok"}})
	require.Equal(t, 401, code, "the form needs the credentials too")
	code, _, _ = postForm(t, c, env.url+"/incidents/"+id+"/approve", url.Values{"csrf": {token}, "by": {"sre"}, "reason": {"ok"}}, auth)
	require.Equal(t, http.StatusSeeOther, code)
	code, _, _ = get(t, c, env.url+"/static/console.css")
	require.Equal(t, 200, code, "assets need no credentials")
}
