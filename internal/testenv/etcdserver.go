package testenv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EtcdServer is one Debian etcd process (package etcd-server) on loopback, alone or a member of
// an EtcdCluster, for tests in which etcd must die and come back: Kill and Start keep its data
// directory and ports.
type EtcdServer struct {
	t            testing.TB
	bin, dir     string
	name         string
	client, peer string
	cluster      string // --initial-cluster: name=peer,…
	token        string // --initial-cluster-token
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
	e := newEtcdServer(t, Tool(t, "etcd-server", "etcd"), "testenv")
	e.cluster = e.name + "=" + e.peer
	e.Start()
	t.Cleanup(e.Kill)
	return e
}

func newEtcdServer(t testing.TB, bin, name string) *EtcdServer {
	return &EtcdServer{
		t: t, bin: bin, dir: t.TempDir(), name: name, log: &syncBuffer{},
		client: fmt.Sprintf("http://127.0.0.1:%d", FreePort(t)),
		peer:   fmt.Sprintf("http://127.0.0.1:%d", FreePort(t)),
	}
}

// Endpoint is the client URL.
func (e *EtcdServer) Endpoint() string { return e.client }

// Name is the member's name.
func (e *EtcdServer) Name() string { return e.name }

// Start runs etcd (again) and waits until it answers /health: alone, or as a member of a
// cluster that has a quorum once it is up.
func (e *EtcdServer) Start() {
	e.t.Helper()
	e.launch()
	e.waitHealthy()
}

// launch starts the process without waiting for it.
func (e *EtcdServer) launch() {
	e.t.Helper()
	args := []string{"--name=" + e.name, "--data-dir=" + e.dir,
		"--listen-client-urls=" + e.client, "--advertise-client-urls=" + e.client,
		"--listen-peer-urls=" + e.peer, "--initial-advertise-peer-urls=" + e.peer,
		"--initial-cluster=" + e.cluster, "--log-level=warn", "--logger=zap"}
	if e.token != "" {
		args = append(args, "--initial-cluster-token="+e.token)
	}
	e.cmd = exec.Command(e.bin, args...)
	e.cmd.Stdout, e.cmd.Stderr = e.log, e.log
	// The process dies with the test binary, even when the test is killed.
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := e.cmd.Start(); err != nil {
		e.t.Fatalf("start etcd %s: %v", e.name, err)
	}
	exited := make(chan struct{})
	e.exited = exited
	go func() { _ = e.cmd.Wait(); close(exited) }()
}

// waitHealthy polls /health until etcd says it is healthy (it has a leader and answers).
func (e *EtcdServer) waitHealthy() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), etcdReadyTimeout)
	defer cancel()
	for {
		if e.Healthy(ctx) {
			return
		}
		select {
		case <-e.exited:
			e.t.Fatalf("etcd %s exited before it was healthy:\n%s", e.name, e.log)
		case <-ctx.Done():
			e.Kill()
			e.t.Fatalf("etcd %s not healthy within %s:\n%s", e.name, etcdReadyTimeout, e.log)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Healthy says whether the member answers /health with "health":"true": it runs, is part of a
// cluster with a leader, and serves requests.
func (e *EtcdServer) Healthy(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.client+"/health", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	return resp.StatusCode == http.StatusOK && bytes.Contains(body.Bytes(), []byte(`"health":"true"`))
}

// IsLeader says whether the member is its cluster's Raft leader right now (etcd_server_is_leader
// on its /metrics).
func (e *EtcdServer) IsLeader(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.client+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "etcd_server_is_leader 1" {
			return true
		}
	}
	return false
}

// Running says whether the process has been started and not exited.
func (e *EtcdServer) Running() bool {
	if e.cmd == nil {
		return false
	}
	select {
	case <-e.exited:
		return false
	default:
		return true
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

// EtcdCluster is a multi-member Debian etcd on loopback, for tests of member and quorum loss.
type EtcdCluster struct {
	Members []*EtcdServer
}

// StartEtcdCluster starts n etcd members (m0, m1, …) that form one cluster, waits until every
// member is healthy, and kills them all when the test ends. Member i is Kill()ed and Start()ed
// again with its data; Start waits for health, so it needs a quorum once it is up.
func StartEtcdCluster(t testing.TB, n int) *EtcdCluster {
	t.Helper()
	bin := Tool(t, "etcd-server", "etcd")
	c := &EtcdCluster{}
	var peers []string
	for i := range n {
		m := newEtcdServer(t, bin, fmt.Sprintf("m%d", i))
		c.Members = append(c.Members, m)
		peers = append(peers, m.name+"="+m.peer)
	}
	token := fmt.Sprintf("testenv-%d", time.Now().UnixNano())
	for _, m := range c.Members {
		m.cluster, m.token = strings.Join(peers, ","), token
		t.Cleanup(m.Kill)
	}
	// A member alone is not healthy until a quorum of the others is up: start all, then wait.
	for _, m := range c.Members {
		m.launch()
	}
	for _, m := range c.Members {
		m.waitHealthy()
	}
	return c
}

// Endpoints are the members' client URLs.
func (c *EtcdCluster) Endpoints() []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.client
	}
	return out
}

// Leader is the index of the member that is the Raft leader now, waiting up to within for
// the running members to agree on one; -1 if none did.
func (c *EtcdCluster) Leader(within time.Duration) int {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		for i, m := range c.Members {
			if m.Running() && m.IsLeader(ctx) {
				return i
			}
		}
		select {
		case <-ctx.Done():
			return -1
		case <-time.After(100 * time.Millisecond):
		}
	}
}
