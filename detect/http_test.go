package detect

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
)

func TestProbeHealthz(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"status":"ok"}`)) })
	mux.HandleFunc("/down", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"down"}`))
	})
	mux.HandleFunc("/degraded", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"status":"degraded"}`)) })
	mux.HandleFunc("/text", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("OK")) })
	mux.HandleFunc("/hang", func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	srv := httptest.NewServer(mux) // 127.0.0.1, free port
	defer srv.Close()

	for _, tc := range []struct {
		path   string
		status Status
		reason string
	}{
		{"/ok", StatusOK, ""},
		{"/down", StatusFail, "HTTP 503 Service Unavailable"},
		{"/degraded", StatusFail, `status "degraded", want "ok"`},
		{"/text", StatusFail, "body is not JSON"},
		{"/hang", StatusError, "context deadline exceeded"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			r := run(ctx, ProbeHTTP, Target{Node: config.NodeConfig{ID: "n1", HealthURL: srv.URL + tc.path}, HTTP: srv.Client()})
			require.Equal(t, tc.status, r.Status, r.Reason)
			require.Contains(t, r.Reason, tc.reason)
			require.Equal(t, ProbeHTTP, r.Probe)
			require.Equal(t, "n1", r.Node)
			require.Less(t, time.Since(start), 2*time.Second, "the probe honours the deadline")
		})
	}

	t.Run("nothing listening", func(t *testing.T) {
		url := closedURL(t)
		r := run(t.Context(), ProbeHTTP, Target{Node: config.NodeConfig{ID: "n1", HealthURL: url}})
		require.Equal(t, StatusError, r.Status)
		require.Contains(t, r.Reason, "connection refused")
	})
}

// closedURL is an http URL on a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	return "http://" + closedAddr(t) + "/healthz"
}
