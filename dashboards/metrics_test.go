package dashboards

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// binDir holds bin/zmysim and bin/zmy-responder, built once by TestMain from this checkout.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, func(dir string) { binDir = dir },
		"./cmd/zmysim", "./cmd/zmysimctl", "./cmd/zmy-responder"))
}

// TestEveryMetricExists starts a simulated 3-node cluster and the responder configured for it,
// once on the bbolt journal and once as a replica on an etcd store, scrapes them all, and
// requires every metric family the rules and dashboards name to be exposed.
func TestEveryMetricExists(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()

	sim := testenv.StartSim(t, filepath.Join(binDir, "zmysim"), "--cluster", testCluster, "--nodes", "3")
	cfgPath := sim.ResponderConfig
	// Watch mode: partition_score is exported only while a measurement is current.
	raw, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cfgPath, append(raw, "\ndetection: {watch_interval: 500ms}\n"...), 0o644))
	cfg, err := config.Load(cfgPath)
	require.NoError(t, err, "the config zmysim wrote")
	cl := cfg.Cluster(testCluster)
	require.NotNil(t, cl, "cluster %q in %s", testCluster, cfgPath)
	require.Len(t, cl.Nodes, 3)

	web, grpc := freeAddr(t), freeAddr(t)
	startProcess(t, dir, "zmy-responder", filepath.Join(binDir, "zmy-responder"),
		"--config.file="+cfgPath, "--web.listen-address="+web, "--grpc.listen-address="+grpc,
		"--storage.path="+filepath.Join(dir, "data"))
	responder := "http://" + web
	waitFor(t, ctx, "zmy-responder /-/ready", func() error { return get(ctx, responder+"/-/ready") })
	waitFor(t, ctx, "a first watch round", func() error {
		got := map[string]*dto.MetricFamily{}
		scrapeInto(t, ctx, responder+"/metrics", got)
		if _, ok := got["zmy_responder_partition_score"]; !ok {
			return errors.New("no partition_score yet")
		}
		return nil
	})

	// A replica on an etcd store (HA) exports the leadership series as well.
	replica := "http://" + startEtcdReplica(t, ctx, dir, cfgPath)

	exposed := map[string]*dto.MetricFamily{}
	for _, n := range cl.Nodes {
		scrapeInto(t, ctx, n.MetricsURL, exposed)
	}
	scrapeInto(t, ctx, responder+"/metrics", exposed)
	scrapeInto(t, ctx, replica+"/metrics", exposed)

	var missing []string
	for name, where := range usedMetrics(t) {
		if !isExposed(name, exposed) {
			missing = append(missing, fmt.Sprintf("%s (used by %s)", name, strings.Join(dedup(where), "; ")))
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "metric families named by rules/ or dashboards/ but exposed by neither a ZMY node nor the responder")
}

// startEtcdReplica runs zmy-responder as replica r1 on an embedded etcd store and returns its
// web address once it is ready.
func startEtcdReplica(t *testing.T, ctx context.Context, dir, cfgPath string) string {
	t.Helper()
	etcd := testenv.StartEtcd(t)
	web, grpc := freeAddr(t), freeAddr(t)
	startProcess(t, dir, "zmy-responder-ha", filepath.Join(binDir, "zmy-responder"),
		"--config.file="+cfgPath, "--web.listen-address="+web, "--grpc.listen-address="+grpc,
		"--storage.backend=etcd", "--storage.etcd.endpoints="+etcd, "--ha.replica=r1")
	waitFor(t, ctx, "the etcd replica /-/ready", func() error { return get(ctx, "http://"+web+"/-/ready") })
	return web
}

// haOnly matches the series only replicas on an etcd store export. internal/e2e checks that
// every other panel returns data from a live Prometheus scraping a single responder.
var haOnly = regexp.MustCompile(`\bzmy_responder_leader(_changes_total)?\b`)

// The panels on the leadership series return data from a real Prometheus scraping a replica on
// an etcd store (the end-to-end test runs a single responder on bbolt, which has none).
func TestHAPanelsReturnData(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	sim := testenv.StartSim(t, filepath.Join(binDir, "zmysim"), "--cluster", testCluster, "--nodes", "3")
	web := startEtcdReplica(t, ctx, dir, sim.ResponderConfig)
	prom := testenv.StartPrometheus(t, fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: zmy-responder
    static_configs: [{targets: [%q]}]
`, web))
	var queries []Query
	for _, d := range loadDashboards(t) {
		for _, q := range d.Queries(testCluster) {
			if haOnly.MatchString(q.Expr) {
				queries = append(queries, q)
			}
		}
	}
	require.NotEmpty(t, queries, "the dashboards have panels on the leadership series")
	for _, q := range queries {
		waitFor(t, ctx, q.Where+" to return data", func() error {
			samples, err := prom.Query(ctx, q.Expr)
			if err != nil {
				return err
			}
			if len(samples) == 0 {
				return fmt.Errorf("no data: %s", q.Expr)
			}
			return nil
		})
	}
	// The replica leads the cluster: the leader panel shows it.
	samples, err := prom.Query(ctx, fmt.Sprintf(`zmy_responder_leader{cluster=%q} == 1`, testCluster))
	require.NoError(t, err)
	require.Len(t, samples, 1)
}

// isExposed says whether a series name belongs to an exposed family: the family itself, or a
// histogram's (or summary's) _bucket/_sum/_count series.
func isExposed(name string, exposed map[string]*dto.MetricFamily) bool {
	if _, ok := exposed[name]; ok {
		return true
	}
	mf, ok := exposed[familyName(name)]
	if !ok {
		return false
	}
	switch mf.GetType() {
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		return true
	case dto.MetricType_SUMMARY:
		return !strings.HasSuffix(name, "_bucket")
	}
	return false
}

func scrapeInto(t *testing.T, ctx context.Context, url string, into map[string]*dto.MetricFamily) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	// Plain text exposition: the parser below reads that format only.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err, "scrape %s", url)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "scrape %s", url)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err, "parse %s", url)
	for name, mf := range mfs {
		into[name] = mf
	}
}

// startProcess runs a binary in its own process group and stops that group when the test ends.
func startProcess(t *testing.T, dir, name, path string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start(), "start %s", name)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("%s log:\n%s", name, tail(b, 4000))
			}
		}
	})
}

func waitFor(t *testing.T, ctx context.Context, what string, check func() error) {
	t.Helper()
	var err error
	for {
		if err = check(); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last: %v)", what, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func get(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
}

func dedup(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
