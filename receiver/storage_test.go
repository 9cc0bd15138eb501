package receiver

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// TestRunWithEtcd runs two replicas (Run, as the daemon does) on one etcd, a Debian etcd 3.4
// process. The notification Alertmanager sends to both journals one incident; with etcd
// killed, the webhook answers 503 naming etcd and /-/ready says why; with etcd back, the
// retried notification is journaled and nothing of before is lost.
func TestRunWithEtcd(t *testing.T) {
	srv := testenv.StartEtcdServer(t)
	cfg := configFile(t, testClusters+"storage:\n  etcd:\n    request_timeout: 1s\n")
	opts := func() Options {
		return Options{ConfigFile: cfg, StorageBackend: StorageEtcd, EtcdEndpoints: []string{srv.Endpoint()}, EtcdPrefix: "/zr/",
			StoreCheckInterval: 100 * time.Millisecond}
	}
	ra := startRun(t, opts())
	a, b := ra.env(), startRun(t, opts()).env()
	health := grpcHealth(t, ra.grpc)
	post := func(e *testEnv) (int, []byte) { return e.do(t, http.MethodPost, "/webhook", fixture(t, "firing.json")) }
	deliveries := func(e *testEnv) []int {
		code, body := e.do(t, http.MethodGet, "/api/v1/incidents/inc-000001", nil)
		require.Equal(t, http.StatusOK, code, "%s", body)
		var inc struct{ Alerts []struct{ Deliveries int } }
		require.NoError(t, json.Unmarshal(body, &inc))
		var n []int
		for _, al := range inc.Alerts {
			n = append(n, al.Deliveries)
		}
		return n
	}

	code, body := post(a)
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.JSONEq(t, `{"status":"success","incidents":[{"id":"inc-000001","created":true}]}`, string(body))
	code, body = post(b)
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.JSONEq(t, `{"status":"success","incidents":[{"id":"inc-000001","created":false}]}`, string(body), "the other replica attaches")
	require.Equal(t, []int{2, 2}, deliveries(a))
	code, _ = a.do(t, http.MethodGet, "/-/ready", nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, health())

	srv.Kill()
	code, body = post(a)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, errorOf(t, body), "journal write failed, retry later")
	require.Contains(t, errorOf(t, body), "etcd "+srv.Endpoint()+" did not answer within 1s")
	code, body = b.do(t, http.MethodGet, "/-/ready", nil)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, string(body), "incident store unreachable")
	require.Eventually(t, func() bool { return health() == healthpb.HealthCheckResponse_NOT_SERVING },
		30*time.Second, 50*time.Millisecond, "gRPC health follows the store, as /-/ready does")

	srv.Start()
	require.Eventually(t, func() bool {
		code, _ := a.do(t, http.MethodGet, "/-/ready", nil)
		return code == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "not ready 30s after etcd came back")
	require.Eventually(t, func() bool { return health() == healthpb.HealthCheckResponse_SERVING },
		30*time.Second, 50*time.Millisecond, "gRPC health SERVING again with etcd back")
	code, body = post(a) // Alertmanager's retry of the notification answered 503
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.Equal(t, []int{3, 3}, deliveries(b), "the failed delivery wrote nothing, the earlier ones are kept")
}

func TestRunRefusesStorage(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		err  string
	}{
		{"no endpoints", Options{StorageBackend: StorageEtcd}, "--storage.backend=etcd needs --storage.etcd.endpoints"},
		{"bad endpoint", Options{StorageBackend: StorageEtcd, EtcdEndpoints: []string{"127.0.0.1:2379"}}, `"127.0.0.1:2379" is not an http:// or https:// URL`},
		{"bad prefix", Options{StorageBackend: StorageEtcd, EtcdEndpoints: []string{"http://127.0.0.1:1"}, EtcdPrefix: "zr"}, `--storage.etcd.prefix="zr": must start with /`},
		{"unknown backend", Options{StorageBackend: "redis"}, `--storage.backend="redis": want bbolt or etcd`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			tc.opts.ConfigFile, tc.opts.ListenAddress = configFile(t, testClusters), "127.0.0.1:0"
			require.ErrorContains(t, Run(ctx, tc.opts), tc.err)
		})
	}
}

// grpcHealth returns a function reading the daemon's gRPC health status at addr.
func grpcHealth(t *testing.T, addr string) func() healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	hc := healthpb.NewHealthClient(conn)
	return func() healthpb.HealthCheckResponse_ServingStatus {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		require.NoError(t, err)
		return resp.Status
	}
}
