package receiver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

type running struct {
	url, grpc string
	reg       *prometheus.Registry
	cancel    context.CancelFunc
	done      chan error
	once      sync.Once
	err       error
}

// startRun runs Run in-process on loopback port 0 and waits until it is ready.
func startRun(t *testing.T, opts Options) *running {
	t.Helper()
	if opts.ListenAddress == "" {
		opts.ListenAddress = "127.0.0.1:0"
	}
	if opts.GRPCListenAddress == "" {
		opts.GRPCListenAddress = "127.0.0.1:0"
	}
	if opts.StoragePath == "" {
		opts.StoragePath = t.TempDir()
	}
	r := &running{reg: prometheus.NewRegistry(), done: make(chan error, 1)}
	if opts.Registerer == nil {
		opts.Registerer, opts.Gatherer = r.reg, r.reg
	}
	if opts.NewRunbook == nil {
		opts.NewRunbook = noEngine
	}
	ready := make(chan [2]net.Addr, 1)
	opts.OnReady = func(h, g net.Addr) { ready <- [2]net.Addr{h, g} }
	ctx, cancel := context.WithCancel(t.Context())
	r.cancel = cancel
	go func() { r.done <- Run(ctx, opts) }()
	select {
	case a := <-ready:
		r.url, r.grpc = "http://"+a[0].String(), a[1].String()
	case err := <-r.done:
		cancel()
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(15 * time.Second):
		cancel()
		t.Fatal("Run not ready after 15s")
	}
	t.Cleanup(func() { _ = r.stop(t) })
	return r
}

// stop cancels Run's context and returns what Run returned.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(30 * time.Second):
			r.err = errors.New("Run did not return within 30s of cancellation")
			t.Error(r.err)
		}
	})
	return r.err
}

func (r *running) env() *testEnv { return &testEnv{url: r.url, reg: r.reg} }

// noEngine keeps the real runbook engine out of tests about the receiver itself: it would probe
// the test clusters (nothing listens there) and close their incidents as inconclusive.
func noEngine(RunbookEnv) (Runbook, func(context.Context) error, error) {
	return &fakeRunbook{}, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, nil
}

func configFile(t *testing.T, content string) string {
	t.Helper()
	return writeFile(t, t.TempDir(), "zmy-responder.yml", content)
}

func TestRunServesAndDrains(t *testing.T) {
	storage := t.TempDir()
	r := startRun(t, Options{ConfigFile: configFile(t, testClusters), StoragePath: storage})
	env := r.env()

	code, body := env.do(t, "GET", "/healthz", nil)
	require.Equal(t, 200, code)
	require.JSONEq(t, `{"status":"ok"}`, string(body))
	code, _ = env.do(t, "HEAD", "/-/ready", nil)
	require.Equal(t, 200, code)
	require.Equal(t, 1.0, metricValue(t, r.reg, "zmy_responder_config_last_reload_successful"))

	conn, err := grpc.NewClient(r.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.Status)
	watch, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	first, err := watch.Recv()
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, first.Status)

	// A webhook whose body is still arriving when shutdown starts must finish, and be journaled.
	// A raw connection, so that nothing buffers the first half on the client side.
	payload := fixture(t, "firing.json")
	conn2, err := net.Dial("tcp", strings.TrimPrefix(r.url, "http://"))
	require.NoError(t, err)
	defer conn2.Close()
	require.NoError(t, conn2.SetDeadline(time.Now().Add(30*time.Second)))
	_, err = fmt.Fprintf(conn2, "POST /webhook HTTP/1.1\r\nHost: zmy\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(payload))
	require.NoError(t, err)
	_, err = conn2.Write(payload[:len(payload)/2])
	require.NoError(t, err)
	// The webhook is in its handler when in-flight counts it next to the /metrics request.
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(t, r.reg, "zmy_responder_http_requests_in_flight") < 1 {
		require.True(t, time.Now().Before(deadline), "the webhook request never reached its handler")
		time.Sleep(10 * time.Millisecond)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- r.stop(t) }()
	// gRPC health turns NOT_SERVING as soon as shutdown begins.
	next, err := watch.Recv()
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, next.Status)
	// New connections are refused soon after (the listener closes right after readiness drops).
	deadline = time.Now().Add(5 * time.Second)
	for {
		if code, _ := (&testEnv{url: r.url}).doErr("GET", "/healthz"); code == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "still accepting connections during shutdown")
		time.Sleep(10 * time.Millisecond)
	}

	_, err = conn2.Write(payload[len(payload)/2:])
	require.NoError(t, err)
	resp2, err := http.ReadResponse(bufio.NewReader(conn2), nil)
	require.NoError(t, err, "in-flight request finishes during shutdown")
	resp2.Body.Close()
	require.Equal(t, 200, resp2.StatusCode)
	select {
	case err := <-stopped:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}

	// The journal was closed (its lock released) and holds the in-flight alert.
	j, err := incident.Open(filepath.Join(storage, incident.FileName), incident.Options{LockTimeout: time.Second})
	require.NoError(t, err)
	defer j.Close()
	incs, err := j.List(t.Context(), false)
	require.NoError(t, err)
	require.Len(t, incs, 1)
	require.Len(t, incs[0].Alerts, 2)
}

func metricValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func TestRunReload(t *testing.T) {
	cfgPath := configFile(t, testClusters)
	hup := make(chan struct{})
	var mu sync.Mutex
	var reloaded []*config.Config
	r := startRun(t, Options{ConfigFile: cfgPath, Reload: hup, OnReload: func(c *config.Config) {
		mu.Lock()
		defer mu.Unlock()
		reloaded = append(reloaded, c)
	}})
	env := r.env()

	// A bad file: 500 saying why, metric 0, the old configuration keeps working.
	writeFile(t, filepath.Dir(cfgPath), "zmy-responder.yml", testClusters+"    bogus_key: 1\n")
	code, body := env.do(t, "POST", "/-/reload", nil)
	require.Equal(t, 500, code)
	msg := errorOf(t, body)
	require.Contains(t, msg, "previous configuration kept")
	require.Contains(t, msg, `unknown field "bogus_key"`)
	require.Equal(t, 0.0, metricValue(t, r.reg, "zmy_responder_config_last_reload_successful"))
	code, _ = env.do(t, "POST", "/webhook", fixture(t, "one.json"))
	require.Equal(t, 200, code)

	// A good file through the SIGHUP channel: metric back to 1, hooks called.
	writeFile(t, filepath.Dir(cfgPath), "zmy-responder.yml", testClusters+`
  - name: ghost
    zmyctl: ["zmyctl"]
    nodes:
      - {id: g1, metrics_url: "http://127.0.0.1:1/metrics", peer_addr: "127.0.0.1:1"}
`)
	hup <- struct{}{}
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(t, r.reg, "zmy_responder_config_last_reload_successful") != 1 {
		require.True(t, time.Now().Before(deadline), "reload through the channel did not happen")
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	require.Len(t, reloaded, 1)
	require.NotNil(t, reloaded[0].Cluster("ghost"))
	mu.Unlock()
	// ghost is known now: its alert opens a real incident instead of unknown_cluster.
	code, _ = env.do(t, "POST", "/webhook", fixture(t, "unknown_cluster.json"))
	require.Equal(t, 200, code)
	var list struct{ Incidents []incident.Incident }
	code, body = env.do(t, "GET", "/api/v1/incidents?state=open", nil)
	require.Equal(t, 200, code)
	require.NoError(t, jsonUnmarshal(body, &list))
	require.Len(t, list.Incidents, 2)

	code, _ = env.do(t, "POST", "/-/reload", nil)
	require.Equal(t, 200, code)
	require.NoError(t, r.stop(t))
}

func TestRunRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts func(t *testing.T) Options
		err  string
	}{
		{"unauthenticated on all interfaces", func(t *testing.T) Options {
			return Options{ConfigFile: configFile(t, testClusters), ListenAddress: ":0", StoragePath: t.TempDir()}
		}, "refusing to serve mutating endpoints without credentials on :0"},
		{"invalid config", func(t *testing.T) Options {
			return Options{ConfigFile: configFile(t, "clusters: [{name: east}]"), ListenAddress: "127.0.0.1:0", StoragePath: t.TempDir()}
		}, "clusters[0].zmyctl: an argv template is required"},
		{"storage is a file", func(t *testing.T) Options {
			return Options{ConfigFile: configFile(t, testClusters), ListenAddress: "127.0.0.1:0",
				StoragePath: writeFile(t, t.TempDir(), "f", "x")}
		}, "create storage directory"},
		{"bad web config", func(t *testing.T) Options {
			return Options{ConfigFile: configFile(t, testClusters), ListenAddress: "127.0.0.1:0", StoragePath: t.TempDir(),
				WebConfigFile: writeFile(t, t.TempDir(), "web.yml", "tls_server_config: {cert_file: /nope.crt, key_file: /nope.key}\n")}
		}, "web config"},
		{"port taken", func(t *testing.T) Options {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			t.Cleanup(func() { l.Close() })
			return Options{ConfigFile: configFile(t, testClusters), ListenAddress: l.Addr().String(), StoragePath: t.TempDir()}
		}, "listen on --web.listen-address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err := Run(ctx, tc.opts(t))
			require.ErrorContains(t, err, tc.err)
		})
	}
}

// engineStub records how Run drives the engine: its loop's lifetime and config pushes.
type engineStub struct {
	fakeRunbook
	mu       sync.Mutex
	configs  []*config.Config
	loopDone chan struct{}
	exitNow  chan struct{}
}

func (e *engineStub) PrepareConfig(c *config.Config) (func(), error) {
	if c.Cluster("refused") != nil {
		return nil, errors.New("cluster refused: the engine cannot build it")
	}
	return func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.configs = append(e.configs, c)
	}, nil
}

func TestRunWiresTheEngine(t *testing.T) {
	stub := &engineStub{loopDone: make(chan struct{}), exitNow: make(chan struct{})}
	cfgPath := configFile(t, testClusters)
	r := startRun(t, Options{
		ConfigFile: cfgPath,
		Logger:     slog.New(slog.DiscardHandler),
		NewRunbook: func(env RunbookEnv) (Runbook, func(context.Context) error, error) {
			require.NotNil(t, env.Config.Cluster("east"))
			require.NotNil(t, env.Store)
			require.NotNil(t, env.Registerer)
			require.NotEmpty(t, env.Replica, "the host name when --ha.replica is not given")
			require.Nil(t, env.Etcd, "the embedded journal: no elections")
			return stub, func(ctx context.Context) error {
				defer close(stub.loopDone)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-stub.exitNow:
					return errors.New("engine crashed")
				}
			}, nil
		},
	})
	env := r.env()
	code, body := env.do(t, "POST", "/api/v1/incidents/inc-000001/approve", []byte(`{"by":"a","reason":"b"}`))
	require.Equal(t, 200, code, "%s", body)
	code, _ = env.do(t, "POST", "/-/reload", nil)
	require.Equal(t, 200, code)
	stub.mu.Lock()
	require.Len(t, stub.configs, 1, "a reload is committed to the engine")
	stub.mu.Unlock()

	// A file that is valid but that the engine cannot build fails the reload, says why, and
	// changes nothing: neither the engine nor the server takes it.
	writeFile(t, filepath.Dir(cfgPath), "zmy-responder.yml", testClusters+`
  - name: refused
    zmyctl: ["zmyctl"]
    nodes:
      - {id: r1, metrics_url: "http://127.0.0.1:1/metrics", peer_addr: "127.0.0.1:1"}
`)
	code, body = env.do(t, "POST", "/-/reload", nil)
	require.Equal(t, 500, code)
	require.Contains(t, errorOf(t, body), "cluster refused: the engine cannot build it")
	require.Equal(t, 0.0, metricValue(t, r.reg, "zmy_responder_config_last_reload_successful"))
	stub.mu.Lock()
	require.Len(t, stub.configs, 1, "a refused config is never committed")
	stub.mu.Unlock()
	// The webhook still judges by the previous config: "refused" is an unknown cluster.
	code, body = env.do(t, "POST", "/webhook", notification("refused", "fp-refused"))
	require.Equal(t, 200, code, "%s", body)
	code, body = env.do(t, "GET", "/api/v1/incidents/inc-000001", nil)
	require.Equal(t, 200, code, "%s", body)
	var inc incident.Incident
	require.NoError(t, json.Unmarshal(body, &inc))
	require.Equal(t, "refused", inc.Cluster)
	require.Equal(t, incident.OutcomeUnknownCluster, inc.Outcome, "the server kept its previous config")

	// The engine dying takes the daemon down with an error rather than leaving it half alive.
	close(stub.exitNow)
	select {
	case err := <-r.done:
		r.once.Do(func() {})
		require.ErrorContains(t, err, "runbook engine stopped unexpectedly: engine crashed")
	case <-time.After(20 * time.Second):
		t.Fatal("Run kept running without its engine")
	}
	<-stub.loopDone
}

func TestRunStopsEngineOnShutdown(t *testing.T) {
	loopCtxErr := make(chan error, 1)
	r := startRun(t, Options{
		ConfigFile: configFile(t, testClusters),
		NewRunbook: func(RunbookEnv) (Runbook, func(context.Context) error, error) {
			return &fakeRunbook{}, func(ctx context.Context) error {
				<-ctx.Done()
				loopCtxErr <- ctx.Err()
				return ctx.Err()
			}, nil
		},
	})
	require.NoError(t, r.stop(t), "a cancelled engine loop is a clean stop")
	require.ErrorIs(t, <-loopCtxErr, context.Canceled)
}

func TestRunMetricsEndpoint(t *testing.T) {
	r := startRun(t, Options{ConfigFile: configFile(t, testClusters)})
	code, body := r.env().do(t, "GET", "/metrics", nil)
	require.Equal(t, 200, code)
	for _, name := range []string{
		"zmy_responder_webhook_requests_total", "zmy_responder_alerts_received_total",
		"zmy_responder_incidents_open", "zmy_responder_journal_write_duration_seconds",
		"zmy_responder_config_last_reload_successful", "zmy_responder_config_last_reload_success_timestamp_seconds",
	} {
		require.True(t, strings.Contains(string(body), "# TYPE "+name+" "), "%s missing from /metrics", name)
	}
	require.NoError(t, testutil.GatherAndCompare(r.reg, strings.NewReader(`
# HELP zmy_responder_incidents_open Incidents not yet closed, by cluster, read from the journal.
# TYPE zmy_responder_incidents_open gauge
zmy_responder_incidents_open{cluster="east"} 0
`), "zmy_responder_incidents_open"))
}
