package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/testenv"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// buildZmysim builds cmd/zmysim into a temporary directory.
func buildZmysim(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, testenv.Build(dir, "./cmd/zmysim"))
	return filepath.Join(dir, "zmysim")
}

func runBin(t *testing.T, bin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errOut.String()
	case errors.As(err, &exitErr):
		return exitErr.ExitCode(), out.String(), errOut.String()
	}
	t.Fatalf("run %s %v: %v", bin, args, err)
	return 0, "", ""
}

// TestBinary drives `zmysim run` as the demo and the end-to-end tests do: files, ready
// line, ctl, fault, nodes, audit and invariants, then a clean SIGTERM shutdown.
func TestBinary(t *testing.T) {
	bin := buildZmysim(t)
	dir := t.TempDir()
	ready, cfgFile, sdFile := filepath.Join(dir, "ready.json"), filepath.Join(dir, "zmy-responder.yml"), filepath.Join(dir, "sd.json")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	run := exec.CommandContext(ctx, bin, "run", "--cluster", "bin", "--nodes", "5", "--admin-address", "127.0.0.1:0",
		"--write-rate", "100", "--election-delay", "100ms", "--ready-file", ready, "--responder-config", cfgFile,
		"--prometheus-sd-file", sdFile, "--alertmanager-url", "http://127.0.0.1:9093")
	stdout, err := run.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	run.Stderr = &stderr
	require.NoError(t, run.Start())
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()

	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		if sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var line string
	select {
	case line = <-lines:
	case err := <-exited:
		t.Fatalf("zmysim run exited early: %v\n%s", err, stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("no ready line within 20s\n%s", stderr.String())
	}
	fileLine, err := os.ReadFile(ready)
	require.NoError(t, err)
	require.Equal(t, line+"\n", string(fileLine), "the ready file holds the ready line")
	var info ReadyInfo
	require.NoError(t, json.Unmarshal([]byte(line), &info))
	require.Len(t, info.Nodes, 5)
	admin := info.Admin

	// The responder config is complete: the responder's own strict loader accepts it.
	cfg, err := config.Load(cfgFile)
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:9093", cfg.Alertmanager.URL)
	require.Len(t, cfg.Clusters, 1)
	cl := cfg.Clusters[0]
	require.Equal(t, "bin", cl.Name)
	require.Equal(t, []string{bin, "ctl", "--endpoint", "{{.Node.Admin}}"}, cl.Zmyctl)
	require.True(t, filepath.IsAbs(cl.Zmyctl[0]))
	require.Len(t, cl.Nodes, 5)
	require.Equal(t, config.NodeConfig{ID: "n3", Host: "127.0.0.1", Admin: info.Nodes[2].Admin,
		MetricsURL: info.Nodes[2].MetricsURL, HealthURL: info.Nodes[2].HealthURL,
		PeerAddr: info.Nodes[2].PeerAddr, GRPCAddr: info.Nodes[2].GRPCAddr}, cl.Nodes[2])

	var sd []struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	raw, err := os.ReadFile(sdFile)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &sd))
	require.Len(t, sd, 5)
	require.Equal(t, []string{info.Nodes[4].HTTPAddr}, sd[4].Targets)
	require.Equal(t, map[string]string{"cluster": "bin", "node": "n5"}, sd[4].Labels)

	// ctl through the binary, flags before and after the words.
	code, out, errOut := runBin(t, bin, "ctl", "--endpoint", info.Nodes[0].Admin, "status", "--quorum")
	require.Equal(t, 0, code, errOut)
	require.True(t, strings.HasPrefix(out, "QUORUM_OK leader_id=n1 "), out)
	code, out, _ = runBin(t, bin, "ctl", "--endpoint", info.Nodes[1].Admin, "-o", "json", "status", "--quorum")
	require.Equal(t, 0, code)
	var qs zmy.QuorumStatus
	require.NoError(t, json.Unmarshal([]byte(out), &qs))
	require.Equal(t, "n2", qs.Node)
	code, out, _ = runBin(t, bin, "ctl", "--endpoint", info.Nodes[1].Admin, "raft", "suspend", "--force", "-o", "json")
	require.Equal(t, 0, code)
	require.Contains(t, out, `"raft_state":"suspended"`)
	code, _, _ = runBin(t, bin, "ctl", "--endpoint", info.Nodes[1].Admin, "raft", "resume")
	require.Equal(t, 0, code)
	code, _, errOut = runBin(t, bin, "ctl", "--endpoint", info.Nodes[1].Admin, "bogus")
	require.Equal(t, zmy.ExitUsage, code, errOut)

	// Faults, nodes, audit, invariants.
	code, _, errOut = runBin(t, bin, "fault", "--admin-address", admin, "clock", "n3", "-1s")
	require.Equal(t, 0, code, errOut)
	code, _, errOut = runBin(t, bin, "fault", "--admin-address", admin, "partition", "n1,n2/n3")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "missing n4,n5")
	code, _, errOut = runBin(t, bin, "fault", "--admin-address", admin, "kill", "n5")
	require.Equal(t, 0, code, errOut)
	code, _, errOut = runBin(t, bin, "ctl", "--endpoint", info.Nodes[4].Admin, "raft", "state")
	require.Equal(t, zmy.ExitUnreachable, code, errOut)

	code, out, _ = runBin(t, bin, "nodes", "--admin-address", admin)
	require.Equal(t, 0, code)
	var nodes []NodeInfo
	require.NoError(t, json.Unmarshal([]byte(out), &nodes))
	require.Len(t, nodes, 5)
	require.Equal(t, "killed", nodes[4].Role)
	require.Equal(t, "-1s", nodes[2].Clock)
	require.Equal(t, info.Nodes[0].Admin, nodes[0].Admin)

	code, out, _ = runBin(t, bin, "audit", "--admin-address", admin)
	require.Equal(t, 0, code)
	auditLines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, auditLines, 5, "five commands reached a node:\n%s", out)
	var first AuditEntry
	require.NoError(t, json.Unmarshal([]byte(auditLines[0]), &first))
	require.Equal(t, AuditEntry{Node: "n1", Args: []string{"status", "--quorum"}, Exit: 0}, AuditEntry{Node: first.Node, Args: first.Args, Exit: first.Exit})

	code, out, _ = runBin(t, bin, "invariants", "--admin-address", admin)
	require.Equal(t, 0, code, out)
	require.JSONEq(t, "[]", out)
	code, _, _ = runBin(t, bin, "fault", "--admin-address", admin, "partition", "n1,n2,n3/n4,n5")
	require.Equal(t, 0, code)
	code, _, _ = runBin(t, bin, "ctl", "--endpoint", info.Nodes[3].Admin, "raft", "resume")
	require.Equal(t, 0, code)
	code, out, _ = runBin(t, bin, "invariants", "--admin-address", admin)
	require.Equal(t, 1, code, "a violation makes invariants exit 1")
	var vs []Violation
	require.NoError(t, json.Unmarshal([]byte(out), &vs))
	require.Len(t, vs, 1)
	require.Equal(t, KindResumeBeforeRecover, vs[0].Kind)

	require.NoError(t, run.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, "clean exit on SIGTERM\n%s", stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("zmysim run did not stop within 10s of SIGTERM")
	}
}

// TestResponderConfigWithEtcd checks the etcd section the responder's loader validates.
func TestResponderConfigWithEtcd(t *testing.T) {
	c, err := Start(t.Context(), Options{Cluster: "cfg", Nodes: 3, EtcdEndpoints: []string{"http://127.0.0.1:1"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	raw, err := c.ResponderConfig(ResponderConfigOptions{Zmysim: "/usr/local/bin/zmysim"})
	require.NoError(t, err)
	cfg, err := config.LoadBytes(raw)
	require.NoError(t, err, "%s", raw)
	require.Empty(t, cfg.Alertmanager.URL, "no Alertmanager given: silencing stays off")
	require.Equal(t, []string{"http://127.0.0.1:1"}, cfg.Clusters[0].Etcd.Endpoints)
	require.Equal(t, "/zmy/cfg/nodes/", cfg.Clusters[0].Etcd.KeyPrefix)
	_, err = c.ResponderConfig(ResponderConfigOptions{})
	require.Error(t, err)
}

// TestResponderConfigPrefersTheLeanCtl: with zmysimctl beside zmysim the config runs it, on one
// thread (GOMAXPROCS=1 through zmyctl_env), and the responder's loader accepts that.
func TestResponderConfigPrefersTheLeanCtl(t *testing.T) {
	c, err := Start(t.Context(), Options{Cluster: "lean", Nodes: 3})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	dir := t.TempDir()
	for _, name := range []string{"zmysim", "zmysimctl"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755))
	}
	raw, err := c.ResponderConfig(ResponderConfigOptions{Zmysim: filepath.Join(dir, "zmysim")})
	require.NoError(t, err)
	cfg, err := config.LoadBytes(raw)
	require.NoError(t, err, "%s", raw)
	cl := cfg.Clusters[0]
	require.Equal(t, []string{filepath.Join(dir, "zmysimctl"), "--endpoint", "{{.Node.Admin}}"}, cl.Zmyctl)
	require.Equal(t, map[string]string{"GOMAXPROCS": "1"}, cl.ZmyctlEnv)
	require.Equal(t, config.DriverAPI, cl.Driver, "generated configs call the nodes' admin API")

	raw, err = c.ResponderConfig(ResponderConfigOptions{Zmysim: filepath.Join(dir, "zmysim"), Driver: "zmyctl"})
	require.NoError(t, err)
	cfg, err = config.LoadBytes(raw)
	require.NoError(t, err, "%s", raw)
	require.Equal(t, config.DriverZmyctl, cfg.Clusters[0].Driver)
	_, err = c.ResponderConfig(ResponderConfigOptions{Zmysim: filepath.Join(dir, "zmysim"), Driver: "ssh"})
	require.ErrorContains(t, err, `driver "ssh"`)
}
