package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// EtcdServer is a single-member Debian etcd (package etcd-server) on loopback, for tests in
// which etcd must die and come back: Kill and Start keep its data directory and ports.
type EtcdServer struct {
	t            testing.TB
	bin, dir     string
	client, peer string
	cmd          *exec.Cmd
	exited       chan struct{}
	log          *syncBuffer
}

// etcdReadyTimeout bounds the wait for a started etcd to be healthy.
const etcdReadyTimeout = 30 * time.Second

// StartEtcdServer starts an etcd process on free loopback ports with a temporary data
// directory, waits until it is healthy, and stops it when the test ends.
func StartEtcdServer(t testing.TB) *EtcdServer {
	t.Helper()
	e := &EtcdServer{
		t: t, bin: Tool(t, "etcd-server", "etcd"), dir: t.TempDir(), log: &syncBuffer{},
		client: fmt.Sprintf("http://127.0.0.1:%d", FreePort(t)),
		peer:   fmt.Sprintf("http://127.0.0.1:%d", FreePort(t)),
	}
	e.Start()
	t.Cleanup(e.Kill)
	return e
}

// Endpoint is the client URL.
func (e *EtcdServer) Endpoint() string { return e.client }

// Start runs etcd (again) and waits until it answers /health.
func (e *EtcdServer) Start() {
	e.t.Helper()
	e.cmd = exec.Command(e.bin, "--name=testenv", "--data-dir="+e.dir,
		"--listen-client-urls="+e.client, "--advertise-client-urls="+e.client,
		"--listen-peer-urls="+e.peer, "--initial-advertise-peer-urls="+e.peer,
		"--initial-cluster=testenv="+e.peer, "--log-level=warn", "--logger=zap")
	e.cmd.Stdout, e.cmd.Stderr = e.log, e.log
	// The process dies with the test binary, even when the test is killed.
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := e.cmd.Start(); err != nil {
		e.t.Fatalf("start etcd: %v", err)
	}
	exited := make(chan struct{})
	e.exited = exited
	go func() { _ = e.cmd.Wait(); close(exited) }()

	ctx, cancel := context.WithTimeout(context.Background(), etcdReadyTimeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.client+"/health", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(body.Bytes(), []byte(`"health":"true"`)) {
				return
			}
		}
		select {
		case <-exited:
			e.t.Fatalf("etcd exited before it was healthy:\n%s", e.log)
		case <-ctx.Done():
			e.Kill()
			e.t.Fatalf("etcd not healthy within %s:\n%s", etcdReadyTimeout, e.log)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Kill stops etcd with SIGKILL and waits for it to be gone. Killing a stopped server is a no-op.
func (e *EtcdServer) Kill() {
	if e.cmd == nil || e.cmd.Process == nil {
		return
	}
	select {
	case <-e.exited:
		return
	default:
	}
	_ = e.cmd.Process.Kill()
	<-e.exited
}
