package detect

import (
	"context"
	"net"
	"sync/atomic"
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

// countingListener counts the connections a server accepted.
type countingListener struct {
	net.Listener
	accepted atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

func serveHealth(t *testing.T, addr string) (*grpc.Server, *countingListener) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	cl := &countingListener{Listener: l}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(cl) }()
	return srv, cl
}

func TestGRPCPoolKeepsOneConnectionAndFollowsTheNode(t *testing.T) {
	srv, l := serveHealth(t, "127.0.0.1:0")
	addr := l.Addr().String()
	var pool GRPCPool
	defer pool.Close()
	target := Target{Node: config.NodeConfig{ID: "n1", GRPCAddr: addr}, GRPC: &pool}
	for range 5 {
		r := run(t.Context(), ProbeGRPC, target)
		require.Equal(t, StatusOK, r.Status, r.Reason)
	}
	require.Equal(t, int32(1), l.accepted.Load(), "five checks, one connection")

	// The node dies: the kept connection fails the check at once, not at the deadline.
	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	r := run(ctx, ProbeGRPC, target)
	require.Equal(t, StatusError, r.Status)
	require.Contains(t, r.Reason, "Unavailable")
	require.Less(t, time.Since(start), 2*time.Second)

	// It comes back on the same address: healthy again within the reconnection backoff.
	srv2, _ := serveHealth(t, addr)
	defer srv2.Stop()
	require.Eventually(t, func() bool {
		return run(t.Context(), ProbeGRPC, target).Status == StatusOK
	}, 3*grpcMaxBackoff+time.Second, 50*time.Millisecond)

	// Dropped from the config: Retain closes the connection, and a closed pool still works.
	pool.Retain(func(string) bool { return false })
	require.Empty(t, pool.conns)
	pool.Close()
	r = run(t.Context(), ProbeGRPC, target)
	require.Equal(t, StatusOK, r.Status, r.Reason)
	require.Empty(t, pool.conns, "a closed pool keeps nothing")
}
