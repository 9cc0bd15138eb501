package receiver

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

// testClusters is one configured cluster, "east"; nothing listens on its node addresses, which
// the receiver never dials.
const testClusters = `
clusters:
  - name: east
    zmyctl: ["zmyctl", "--endpoint", "{{.Node.Admin}}"]
    nodes:
      - {id: n1, admin: "127.0.0.1:1", metrics_url: "http://127.0.0.1:1/metrics", peer_addr: "127.0.0.1:1"}
`

type testEnv struct {
	srv *Server
	j   *incident.Journal
	url string
	reg *prometheus.Registry
}

// newEnv serves a Server over a real loopback HTTP listener with a journal in a temp dir.
func newEnv(t *testing.T, cfgYAML string, opts ...func(*ServerOptions)) *testEnv {
	t.Helper()
	cfg, err := config.LoadBytes([]byte(cfgYAML))
	require.NoError(t, err)
	j, err := incident.Open(t.TempDir(), incident.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	reg := prometheus.NewRegistry()
	so := ServerOptions{Journal: j, Registerer: reg, Gatherer: reg}
	for _, o := range opts {
		o(&so)
	}
	srv, err := NewServer(cfg, so)
	require.NoError(t, err)
	srv.SetReady(true)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &testEnv{srv: srv, j: j, url: hs.URL, reg: reg}
}

// do sends a request; hdr is "Name: value" pairs.
func (e *testEnv) do(t *testing.T, method, path string, body []byte, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.url+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "webhook", name))
	require.NoError(t, err)
	return b
}

// errorOf decodes a {"error": "…"} body, failing the test if the body is anything else.
func errorOf(t *testing.T, body []byte) string {
	t.Helper()
	var eb map[string]any
	require.NoError(t, json.Unmarshal(body, &eb), "error body must be JSON: %s", body)
	require.Len(t, eb, 1, "error body has exactly the error key: %s", body)
	msg, ok := eb["error"].(string)
	require.True(t, ok, "error body: %s", body)
	require.NotEmpty(t, msg)
	return msg
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// doErr is do without failing on a transport error: code 0 means the request did not get through.
func (e *testEnv) doErr(method, path string) (int, error) {
	req, err := http.NewRequest(method, e.url+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
