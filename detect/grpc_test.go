package detect

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/zmyorg/zmy-responder/internal/config"
)

func TestProbeGRPCHealth(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()
	target := Target{Node: config.NodeConfig{ID: "n1", GRPCAddr: l.Addr().String()}}

	r := run(t.Context(), ProbeGRPC, target)
	require.Equal(t, StatusOK, r.Status, r.Reason)
	require.Equal(t, "SERVING", r.Value)

	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	r = run(t.Context(), ProbeGRPC, target)
	require.Equal(t, StatusFail, r.Status)
	require.Contains(t, r.Reason, "NOT_SERVING")

	r = run(t.Context(), ProbeGRPC, Target{Node: config.NodeConfig{ID: "n2", GRPCAddr: closedAddr(t)}})
	require.Equal(t, StatusError, r.Status)
	require.Contains(t, r.Reason, "Unavailable")
}

// A server that accepts TCP but never speaks HTTP/2 must not hold the probe past its deadline
// (blackbox_exporter's gRPC probe drops the deadline; ours passes ctx to the call).
func TestProbeGRPCHealthHonoursDeadline(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	held := make(chan net.Conn, 16)
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			select {
			case held <- c: // accept and stay silent
			default:
				_ = c.Close()
			}
		}
	}()
	defer func() {
		_ = l.Close()
		<-accepting
		close(held)
		for c := range held {
			_ = c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := run(ctx, ProbeGRPC, Target{Node: config.NodeConfig{ID: "n1", GRPCAddr: l.Addr().String()}})
	took := time.Since(start)
	require.Equal(t, StatusError, r.Status)
	require.Contains(t, r.Reason, "DeadlineExceeded")
	require.Less(t, took, time.Second)
	require.GreaterOrEqual(t, took, 250*time.Millisecond)
}
