package detect

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// ProbeGRPCHealth calls grpc.health.v1.Health/Check on the node's grpc_addr for the overall
// server (service ""), with ctx's deadline on the call itself — blackbox_exporter's gRPC probe
// drops it. A node without grpc_addr is not probed (the caller skips it). The connection comes
// from t.GRPC when set (kept across rounds), else it is dialled for this one check.
func ProbeGRPCHealth(ctx context.Context, t Target) Result {
	addr := t.Node.GRPCAddr
	if addr == "" {
		return Result{Status: StatusError, Reason: "node has no grpc_addr configured"}
	}
	pool := t.GRPC
	if pool == nil {
		pool = &GRPCPool{closed: true} // a closed pool dials a connection per call
	}
	conn, release, err := pool.conn(addr)
	if err != nil {
		return Result{Status: StatusError, Err: err, Reason: fmt.Sprintf("grpc client for %s: %v", addr, err)}
	}
	defer release()
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

// GRPCPool keeps one client connection per node address across probe rounds: a check on a kept
// connection is one HTTP/2 request, where a fresh one costs a TCP and an HTTP/2 handshake per
// node per round. A node that went away fails its checks at once (the connection is in
// TRANSIENT_FAILURE and checks do not wait for it); one that came back is reconnected within
// grpcMaxBackoff. The zero value is ready to use.
type GRPCPool struct {
	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

// grpcMaxBackoff bounds how long a kept connection waits between reconnection attempts, so a
// restarted node reads healthy again within about a second rather than gRPC's default 2 minutes.
const grpcMaxBackoff = time.Second

func dialHealth(addr string) (*grpc.ClientConn, error) {
	bo := backoff.DefaultConfig
	bo.BaseDelay, bo.MaxDelay = 50*time.Millisecond, grpcMaxBackoff
	return grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: time.Second}))
}

// conn returns addr's kept connection, or, once the pool is closed, a fresh one that release
// closes.
func (p *GRPCPool) conn(addr string) (*grpc.ClientConn, func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c, err := dialHealth(addr)
		if err != nil {
			return nil, nil, err
		}
		return c, func() { _ = c.Close() }, nil
	}
	if c, ok := p.conns[addr]; ok {
		return c, func() {}, nil
	}
	c, err := dialHealth(addr)
	if err != nil {
		return nil, nil, err
	}
	if p.conns == nil {
		p.conns = map[string]*grpc.ClientConn{}
	}
	p.conns[addr] = c
	return c, func() {}, nil
}

// Retain closes the kept connections of addresses for which keep is false.
func (p *GRPCPool) Retain(keep func(addr string) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.conns {
		if !keep(addr) {
			_ = c.Close()
			delete(p.conns, addr)
		}
	}
}

// Close closes every kept connection; later checks dial a connection each.
func (p *GRPCPool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns, p.closed = nil, true
}
