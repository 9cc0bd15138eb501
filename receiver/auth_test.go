package receiver

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
)

func basic(user, pass string) string {
	return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestAuth(t *testing.T) {
	dir := t.TempDir()
	// `echo secret > file` leaves a newline; it is not part of the secret.
	token := writeFile(t, dir, "token", "hook-token\n")
	pw := writeFile(t, dir, "pw", "s3cret")
	cfg := fmt.Sprintf(`
webhook:
  auth: {bearer_token_file: %q}
api:
  auth:
    basic_auth: {username: sre, password_file: %q}
`, token, pw) + testClusters
	rb := &fakeRunbook{}
	env := newEnv(t, cfg, func(o *ServerOptions) { o.Runbook = rb })
	approve := []byte(`{"by":"sre","reason":"checked"}`)

	for _, tc := range []struct {
		name, method, path string
		body               []byte
		hdr                string
		code               int
	}{
		{"webhook without credentials", "POST", "/webhook", fixture(t, "one.json"), "", 401},
		{"webhook wrong token", "POST", "/webhook", fixture(t, "one.json"), "Authorization: Bearer nope", 401},
		{"webhook token prefix", "POST", "/webhook", fixture(t, "one.json"), "Authorization: Bearer hook", 401},
		{"webhook basic instead of token", "POST", "/webhook", fixture(t, "one.json"), basic("sre", "s3cret"), 401},
		{"webhook right token", "POST", "/webhook", fixture(t, "one.json"), "Authorization: Bearer hook-token", 200},
		{"webhook scheme is case-insensitive", "POST", "/webhook", fixture(t, "one.json"), "Authorization: bearer hook-token", 200},
		{"approve without credentials", "POST", "/api/v1/incidents/inc-000001/approve", approve, "", 401},
		{"approve wrong password", "POST", "/api/v1/incidents/inc-000001/approve", approve, basic("sre", "guess"), 401},
		{"approve wrong user", "POST", "/api/v1/incidents/inc-000001/approve", approve, basic("root", "s3cret"), 401},
		{"approve with the webhook token", "POST", "/api/v1/incidents/inc-000001/approve", approve, "Authorization: Bearer hook-token", 401},
		{"approve right", "POST", "/api/v1/incidents/inc-000001/approve", approve, basic("sre", "s3cret"), 200},
		{"pause without credentials", "POST", "/api/v1/clusters/east/pause", approve, "", 401},
		{"reload without credentials", "POST", "/-/reload", nil, "", 401},
		{"reads need none", "GET", "/api/v1/incidents", nil, "", 200},
		{"metrics need none", "GET", "/metrics", nil, "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.hdr != "" {
				hdr = append(hdr, tc.hdr)
			}
			code, body := env.do(t, tc.method, tc.path, tc.body, hdr...)
			require.Equal(t, tc.code, code, "%s", body)
			if code == 401 {
				require.Equal(t, "missing or invalid credentials", errorOf(t, body))
			}
		})
	}
	require.Equal(t, 4.0, testutil.ToFloat64(env.srv.metrics.webhookRequests.WithLabelValues("401")))
	require.Equal(t, []string{"approve inc-000001 by=sre reason=checked"}, rb.calls)

	// A reload picks up a rotated secret; the old one stops working.
	writeFile(t, dir, "token", "rotated")
	c, err := config.LoadBytes([]byte(cfg))
	require.NoError(t, err)
	require.NoError(t, env.srv.SetConfig(c))
	code, _ := env.do(t, "POST", "/webhook", fixture(t, "one.json"), "Authorization: Bearer hook-token")
	require.Equal(t, 401, code)
	code, _ = env.do(t, "POST", "/webhook", fixture(t, "one.json"), "Authorization: Bearer rotated")
	require.Equal(t, 200, code)

	// An unreadable secret fails the swap and keeps the current credentials.
	c.Webhook.Auth.BearerTokenFile = dir + "/missing"
	require.ErrorContains(t, env.srv.SetConfig(c), "webhook.auth: bearer token: read secret file")
	code, _ = env.do(t, "POST", "/webhook", fixture(t, "one.json"), "Authorization: Bearer rotated")
	require.Equal(t, 200, code)
}

func TestAuthTokenOrBasic(t *testing.T) {
	dir := t.TempDir()
	token := writeFile(t, dir, "token", "tok")
	pw := writeFile(t, dir, "pw", "pw")
	env := newEnv(t, fmt.Sprintf(`
webhook:
  auth: {bearer_token_file: %q, basic_auth: {username: am, password_file: %q}}
`, token, pw)+testClusters)
	for hdr, want := range map[string]int{
		"Authorization: Bearer tok": 200,
		basic("am", "pw"):           200,
		basic("am", "tok"):          401,
		"Authorization: Bearer pw":  401,
	} {
		code, _ := env.do(t, "POST", "/webhook", fixture(t, "one.json"), hdr)
		require.Equal(t, want, code, hdr)
	}
}

func TestExposure(t *testing.T) {
	dir := t.TempDir()
	tok := writeFile(t, dir, "tok", "x")
	withAuth := &config.Config{}
	withAuth.Webhook.Auth.BearerTokenFile = tok
	withAuth.API.Auth.BearerTokenFile = tok
	webhookOnly := &config.Config{}
	webhookOnly.Webhook.Auth.BearerTokenFile = tok
	allowed := &config.Config{}
	allowed.API.AllowUnauthenticatedMutations = true

	for _, tc := range []struct {
		addr  string
		basic bool
		cfg   *config.Config
		err   string
	}{
		{"127.0.0.1:9095", false, &config.Config{}, ""},
		{"[::1]:9095", false, &config.Config{}, ""},
		{"localhost:9095", false, &config.Config{}, ""},
		{":9095", false, &config.Config{}, "set webhook.auth and api.auth"},
		{"0.0.0.0:9095", false, &config.Config{}, "not loopback"},
		{"10.0.0.5:9095", false, webhookOnly, "set api.auth, or listen on 127.0.0.1"},
		{":9095", false, withAuth, ""},
		{":9095", true, &config.Config{}, ""},
		{":9095", false, allowed, ""},
	} {
		err := exposure{listenAddress: tc.addr, webBasicAuth: tc.basic}.check(tc.cfg)
		if tc.err == "" {
			require.NoError(t, err, tc.addr)
		} else {
			require.ErrorContains(t, err, tc.err, tc.addr)
		}
	}

	has, err := webConfigHasBasicAuth(writeFile(t, dir, "web.yml", "basic_auth_users:\n  sre: $2y$10$abc\n"))
	require.NoError(t, err)
	require.True(t, has)
	has, err = webConfigHasBasicAuth(writeFile(t, dir, "web2.yml", "tls_server_config: {}\n"))
	require.NoError(t, err)
	require.False(t, has)
}

// TestAuthHeaderParsing guards the cases a naive parser gets wrong.
func TestAuthHeaderParsing(t *testing.T) {
	c := &credentials{token: digest("tok")}
	for h, want := range map[string]bool{
		"Bearer tok":  true,
		"Bearer  tok": false, // the token is everything after the first space
		"Bearertok":   false,
		"Basic tok":   false,
		"":            false,
		"tok":         false,
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		require.Equal(t, want, c.allows(r), "%q", h)
	}
	var none *credentials
	r, _ := http.NewRequest("GET", "/", nil)
	require.True(t, none.allows(r), "no credentials configured: open")
}
