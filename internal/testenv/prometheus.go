package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Prometheus is Debian's prometheus running on loopback for one test.
type Prometheus struct {
	URL string // http://127.0.0.1:port
}

// StartPrometheus runs Prometheus on a free loopback port with config (YAML; relative paths in
// it are resolved against a temporary directory, so give rule files and file_sd files as
// absolute paths) and its own storage, and waits up to 30s for /-/ready. It skips or fails as
// Binary does when Prometheus is not installed. Cleanup kills it; its log is logged when the
// test failed.
func StartPrometheus(t testing.TB, config string) *Prometheus {
	t.Helper()
	bin := Binary(t, "prometheus")
	return onFreePort(t, "prometheus", func(port int) (*Prometheus, error) {
		p := &Prometheus{URL: fmt.Sprintf("http://127.0.0.1:%d", port)}
		dir := t.TempDir()
		cfg := filepath.Join(dir, "prometheus.yml")
		require.NoError(t, os.WriteFile(cfg, []byte(config), 0o644))
		cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
			fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--log.level=warn")
		_, err := StartUntilReady(t, "prometheus", cmd, p.URL+"/-/ready", 30*time.Second)
		return p, err
	})
}

// Sample is one element of an instant query's vector.
type Sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"` // [unix seconds, "value"]
}

// Query runs an instant query now and returns its vector (a scalar or error is an error).
func (p *Prometheus) Query(ctx context.Context, expr string) ([]Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/api/v1/query?query="+url.QueryEscape(expr), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string   `json:"resultType"`
			Result     []Sample `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("query %s: decode: %w", expr, err)
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", expr, out.Error)
	}
	if out.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: %s result, want a vector", expr, out.Data.ResultType)
	}
	return out.Data.Result, nil
}
