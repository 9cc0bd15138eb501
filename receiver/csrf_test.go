package receiver

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCrossSiteRequestsRefused: with no credentials configured, a browser page of another site
// can neither approve, abort, pause, reload nor post a webhook; non-browser clients (no Origin,
// no Sec-Fetch-Site) such as Alertmanager and zmyrtool pass, and so does the page's own origin.
func TestCrossSiteRequestsRefused(t *testing.T) {
	rb := &fakeRunbook{}
	env := newEnv(t, "api: {external_url: \"https://zmy.example.com/\"}\n"+testClusters, func(o *ServerOptions) { o.Runbook = rb })
	ok := []byte(`{"by":"evil page","reason":"approved by evil page"}`)
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   []byte
		hdr    []string
		code   int
	}{
		{"approve from a foreign origin", "POST", "/api/v1/incidents/inc-000001/approve", ok, []string{"Origin: http://evil.example"}, 403},
		{"abort, cross-site fetch", "POST", "/api/v1/incidents/inc-000001/abort", ok, []string{"Sec-Fetch-Site: cross-site"}, 403},
		{"pause, same-site but another origin", "POST", "/api/v1/clusters/east/pause", ok, []string{"Sec-Fetch-Site: same-site", "Origin: http://other.localhost"}, 403},
		{"unpause from a null origin", "POST", "/api/v1/clusters/east/unpause", ok, []string{"Origin: null"}, 403},
		{"reload from a foreign origin", "POST", "/-/reload", nil, []string{"Origin: http://evil.example"}, 403},
		{"webhook from a foreign origin", "POST", "/webhook", fixture(t, "one.json"), []string{"Sec-Fetch-Site: cross-site"}, 403},
		{"console form from a foreign origin", "POST", "/incidents/inc-000001/approve", []byte("by=x&reason=y"),
			[]string{"Origin: http://evil.example", "Content-Type: application/x-www-form-urlencoded"}, 403},
		{"reads are not refused", "GET", "/api/v1/incidents", nil, []string{"Sec-Fetch-Site: cross-site"}, 200},
		{"Alertmanager: no Origin", "POST", "/webhook", fixture(t, "one.json"), nil, 200},
		{"a same-origin page", "POST", "/api/v1/clusters/east/pause", ok, []string{"Sec-Fetch-Site: same-origin"}, 200},
		{"the external URL's origin", "POST", "/api/v1/clusters/east/unpause", ok, []string{"Origin: https://zmy.example.com"}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := env.do(t, tc.method, tc.path, tc.body, tc.hdr...)
			require.Equal(t, tc.code, code, "%s", body)
			if code == 403 {
				require.Contains(t, errorOf(t, body), "cross-origin request refused")
			}
		})
	}
	require.Equal(t, []string{
		"pause east by=evil page reason=approved by evil page",
		"unpause east by=evil page reason=approved by evil page",
	}, rb.calls, "only the same-origin and trusted-origin calls reached the engine")
}

// TestMutationsRequireJSON: a cross-site HTML form can only send form encodings or text/plain;
// the API's mutations take application/json only.
func TestMutationsRequireJSON(t *testing.T) {
	rb := &fakeRunbook{}
	env := newEnv(t, testClusters, func(o *ServerOptions) { o.Runbook = rb })
	ok := []byte(`{"by":"alice","reason":"checked"}`)
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "application/jsonp"} {
		for _, p := range []string{"/api/v1/incidents/inc-000001/approve", "/api/v1/incidents/inc-000001/abort",
			"/api/v1/clusters/east/pause", "/api/v1/clusters/east/unpause"} {
			code, body := env.do(t, "POST", p, ok, "Content-Type: "+ct)
			require.Equal(t, http.StatusUnsupportedMediaType, code, "%s %q", p, ct)
			require.Contains(t, errorOf(t, body), "want application/json")
		}
	}
	require.Empty(t, rb.calls)
	code, body := env.do(t, "POST", "/api/v1/clusters/east/pause", ok, "Content-Type: application/json; charset=utf-8")
	require.Equal(t, 200, code, "%s", body)
}

// TestPlanNeedsAuthAndIsRateLimited: the plan runs commands on every node: it needs api.auth and
// a cluster gets planBurst plans, then 429 with Retry-After; other clusters are not affected;
// an unknown cluster is 404 without spending anything.
func TestPlanNeedsAuthAndIsRateLimited(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "pw", "s3cret")
	rb := &fakeRunbook{}
	now := time.Unix(1_700_000_000, 0)
	env := newEnv(t, "api: {auth: {basic_auth: {username: sre, password_file: "+pw+"}}}\n"+testClusters+`
  - name: west
    zmyctl: [zmyctl]
    nodes: [{id: w1, metrics_url: "http://127.0.0.1:1/metrics", peer_addr: "127.0.0.1:2"}]
`, func(o *ServerOptions) {
		o.Runbook = rb
		o.Now = func() time.Time { return now }
	})
	code, body := env.do(t, "GET", "/api/v1/clusters/east/plan", nil)
	require.Equal(t, 401, code, "%s", body)
	auth := basic("sre", "s3cret")
	code, _ = env.do(t, "GET", "/api/v1/clusters/nowhere/plan", nil, auth)
	require.Equal(t, 404, code)
	for i := range planBurst {
		code, body = env.do(t, "GET", "/api/v1/clusters/east/plan", nil, auth)
		require.Equal(t, 200, code, "plan %d: %s", i, body)
	}
	req, err := http.NewRequest("GET", env.url+"/api/v1/clusters/east/plan", nil)
	require.NoError(t, err)
	req.SetBasicAuth("sre", "s3cret")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Equal(t, "10", resp.Header.Get("Retry-After"))
	code, _ = env.do(t, "GET", "/api/v1/clusters/west/plan", nil, auth)
	require.Equal(t, 200, code, "another cluster has its own budget")
	now = now.Add(planEvery)
	code, _ = env.do(t, "GET", "/api/v1/clusters/east/plan", nil, auth)
	require.Equal(t, 200, code, "a token back after planEvery")
	code, body = env.do(t, "GET", "/api/v1/clusters/east/plan", nil, auth)
	require.Equal(t, 429, code)
	require.Contains(t, errorOf(t, body), "plan of cluster east: at most 3 per 30s")
}

func TestPlanLimiter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := newPlanLimiter(2, 10*time.Second)
	for _, step := range []struct {
		at   time.Duration
		want time.Duration
	}{
		{0, 0}, {0, 0}, {0, 10 * time.Second}, // burst spent
		{4 * time.Second, 6 * time.Second}, // refilling
		{10 * time.Second, 0},              // one token back
		{10 * time.Second, 10 * time.Second},
		{time.Hour, 0}, {time.Hour, 0}, {time.Hour, 10 * time.Second}, // refills to the burst, no more
		{time.Hour - time.Minute, 10 * time.Second}, // a clock going back refills nothing
	} {
		require.Equal(t, step.want, l.take("east", t0.Add(step.at)), "at %s", step.at)
	}
	require.Zero(t, l.take("west", t0))
}
