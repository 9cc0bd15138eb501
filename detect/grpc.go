package detect

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// ProbeGRPCHealth calls grpc.health.v1.Health/Check on the node's grpc_addr for the overall
// server (service ""), with ctx's deadline on the call itself — blackbox_exporter's gRPC probe
// drops it. A node without grpc_addr is not probed (the caller skips it).
func ProbeGRPCHealth(ctx context.Context, t Target) Result {
	addr := t.Node.GRPCAddr
	if addr == "" {
		return Result{Status: StatusError, Reason: "node has no grpc_addr configured"}
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return Result{Status: StatusError, Err: err, Reason: fmt.Sprintf("grpc client for %s: %v", addr, err)}
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		st := status.Convert(err)
		return Result{Status: StatusError, Err: err, Value: st.Code().String(),
			Reason: fmt.Sprintf("grpc health check %s: %s: %s", addr, st.Code(), st.Message())}
	}
	r := Result{Status: StatusOK, Value: resp.GetStatus().String()}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		r.Status, r.Reason = StatusFail, fmt.Sprintf("grpc health check %s: %s", addr, resp.GetStatus())
	}
	return r
}
